"""Timer accuracy under load: how late parked flows wake, with one clock loop.

``N`` flows (``Start -> nap (Sleep1, SECONDS) -> End``) are started at once on a
SQLite file by an engine that keeps the clock (`Engine.keep_clock`): each parks
in the store, and the loop wakes it when due. Printed: how late each flow's
TimerFired came after its wake time (real time; median, 95th percentile, max)
and how many flows this process held while they slept (none: parked).

    .venv/bin/python benchmarks/timer_accuracy.py [--flows 500] [--seconds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from qm_store_sqlite import SQLiteStore
from quartermaster_engine import Engine, SimpleNodeRegistry
from quartermaster_engine.events import FlowEvent, TimerFired, TimerSet
from quartermaster_graph import GraphBuilder


async def main(flows: int, seconds: float) -> None:
    graph = GraphBuilder("Nap").start().sleep("nap", seconds).end().build()
    set_at: dict[object, float] = {}
    late: list[float] = []

    def hear(event: FlowEvent) -> None:
        if isinstance(event, TimerSet):
            set_at[event.flow_id] = event.wake_at
        elif isinstance(event, TimerFired):
            late.append(event.ts - event.wake_at)

    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder) / "flows.db")
        async with Engine(store=store, registry=SimpleNodeRegistry({}), on_event=hear) as engine:
            clock = asyncio.ensure_future(engine.keep_clock())
            await asyncio.sleep(0.01)
            began = time.time()
            for _ in range(flows):
                await engine.start(graph, "x")
            started = time.time() - began
            await asyncio.sleep(seconds / 2)
            held = len(engine.active_flows)
            while len(late) < flows:  # noqa: ASYNC110 (counted by a listener)
                await asyncio.sleep(0.05)
            clock.cancel()
        await store.close()
    late.sort()
    p95 = late[int(0.95 * (len(late) - 1))]
    print(
        f"{flows} flows sleeping {seconds} s on SQLite, one clock loop: started in "
        f"{started:.2f} s; held by this process while asleep: {held}; woke late by "
        f"median {statistics.median(late) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"max {late[-1] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    asyncio.run(main(args.flows, args.seconds))
