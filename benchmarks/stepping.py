"""Advancing a flow from the store alone: µs per step, early vs late in a long chain.

`FlowStepper.step` is what a process holding only the store runs per activation
(take the lease, read what changed, run the node, commit, let go). This runs a
chain of N no-op nodes step by step on SQLite (default settings) and on a
private redis-server, and reports the median cost of the first 200 steps and
of the last 200: equal figures mean the cost does not grow with the flow. As a
reference, the same chain driven by one ``run()`` on the same store.

    .venv/bin/python benchmarks/stepping.py [--sizes 1000 10000] [--stores sqlite redis]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from qmbench.redis_server import redis_server

from qm_store_redis import RedisStore
from qm_store_sqlite import SQLiteStore
from quartermaster_engine import FlowRunner, FlowStatus, NodeResult, SimpleNodeRegistry
from quartermaster_engine.runner.stepper import FlowStepper
from quartermaster_engine.testing import chain_graph

WINDOW = 200


def _noop(ctx: Any) -> NodeResult:
    return NodeResult(output_text="ok")


async def _measure(store: Any, size: int) -> dict[str, float]:
    runner = FlowRunner(chain_graph(size + 2), SimpleNodeRegistry({"echo": _noop}), store=store)
    await runner.arun("warm-up")
    started = time.perf_counter()
    whole = await runner.arun("go")
    run_us = (time.perf_counter() - started) / (size + 2) * 1e6
    assert whole.status is FlowStatus.COMPLETED, whole.error
    stepper = FlowStepper(runner)
    flow_id = await runner.asubmit("go")
    costs: list[float] = []
    while True:
        t = time.perf_counter()
        step = await stepper.step(flow_id)
        costs.append(time.perf_counter() - t)
        if step.status is not FlowStatus.RUNNING:
            break
    assert step.status is FlowStatus.COMPLETED, step
    return {
        "first": statistics.median(costs[:WINDOW]) * 1e6,
        "last": statistics.median(costs[-WINDOW:]) * 1e6,
        "run": run_us,
    }


async def _bench(kind: str, size: int, url: str | None, folder: Path) -> dict[str, float]:
    store: Any
    if kind == "sqlite":
        store = SQLiteStore(folder / f"steps-{size}.db")
    else:
        store = RedisStore(url or "", key_prefix=f"bench{size}")
    try:
        return await _measure(store, size)
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--stores", nargs="+", default=["sqlite", "redis"])
    args = parser.parse_args()
    print("| store | nodes | first 200 steps | last 200 steps | last ÷ first | run() per node |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp, redis_server() as url:
        for kind in args.stores:
            for size in args.sizes:
                got = asyncio.run(_bench(kind, size, url, Path(tmp)))
                print(
                    f"| {kind} | {size:,} | {got['first']:.0f} µs | {got['last']:.0f} µs | "
                    f"{got['last'] / got['first']:.2f}\u00d7 | {got['run']:.0f} µs |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
