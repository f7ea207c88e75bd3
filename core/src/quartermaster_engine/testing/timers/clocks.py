"""Clock processes racing to wake the same timers: two processes wake due timers
(`Engine.wake_due`) of flows parked on a sleep; each flow is woken exactly once."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from quartermaster_engine.nodes import SimpleNodeRegistry
from quartermaster_engine.runner.engine import Engine
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_engine.testing.calls import call
from quartermaster_engine.testing.timers.nodes import side_work, timer_registry
from quartermaster_engine.testing.timers.sleep import SLEEP_SECONDS, sleep_graph


def clock_worker_main(store: Any, argv: list[str]) -> dict[str, Any]:
    """A clock process: ``clock SIDE_FILE SECONDS``: wake due timers (`Engine.wake_due`)
    until no flow is paused or running, or SECONDS pass; returns how many it woke."""
    _, side, limit = argv[:3]
    deadline = time.time() + float(limit)

    async def main() -> int:
        woke = 0
        async with Engine(store=store, registry=timer_registry(side)) as engine:
            while time.time() < deadline:
                woke += len(await engine.wake_due())
                paused = await engine.flows.list(status=FlowStatus.PAUSED)
                running = await engine.flows.list(status=FlowStatus.RUNNING)
                if not paused and not running:
                    break
                await asyncio.sleep(0.02)
        return woke

    return {"woke": asyncio.run(main())}


def check_clocks_wake_each_timer_once(
    open_store: Callable[[], Any],
    start_clock: Callable[..., Any],
    side: Path,
    flows: int = 50,
    seconds: float = SLEEP_SECONDS,
) -> dict[str, Any]:
    """Park ``flows`` flows on a ``seconds`` sleep, then let two clock processes
    (``start_clock(*args)`` returns a started `subprocess.Popen` running
    `clock_worker_main`) race to wake them: each flow is woken exactly once."""

    async def park_all() -> list[UUID]:
        registry = SimpleNodeRegistry({"work": side_work(str(side))})
        async with Engine(store=open_store(), registry=registry) as engine:
            # Flows started here park on their timer: the clock processes wake them.
            engine.running.clock_kept = True
            ids = [await engine.start(sleep_graph(seconds), "in") for _ in range(flows)]
            while engine.active_flows:  # noqa: ASYNC110 (no event says all have parked)
                await asyncio.sleep(0.01)
            paused = await engine.flows.list(status=FlowStatus.PAUSED)
            assert sorted(r.flow_id for r in paused) == sorted(ids)
            return ids

    ids = asyncio.run(park_all())
    clocks = [start_clock("clock", str(side), str(seconds + 20)) for _ in range(2)]
    outs = [proc.communicate(timeout=60) for proc in clocks]
    for proc, (_, err) in zip(clocks, outs, strict=True):
        assert proc.returncode == 0, err
    woke = [json.loads(out.strip().splitlines()[-1])["woke"] for out, _ in outs]
    lines = Counter(side.read_text().splitlines())
    assert lines == Counter({f"{f} {name}": 1 for f in ids for name in ("before", "after")})
    store = open_store()
    try:
        for flow_id in ids:
            events = list(call(store, "read_events", flow_id))
            kinds = Counter(e.type for e in events)
            assert (kinds["TimerSet"], kinds["TimerFired"], kinds["FlowFinished"]) == (1, 1, 1)
            snap = call(store, "load_flow", flow_id)
            assert snap.flow.status is FlowStatus.COMPLETED
            assert snap.flow.final_output == "after(before(in))"
    finally:
        call(store, "close")
    return {"woke": woke}
