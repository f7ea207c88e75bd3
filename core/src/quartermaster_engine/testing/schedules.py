"""Store checks for schedules (docs/time.md), run by each durable store's tests.

- `check_clocks_fire_each_tick_once`: three clock processes (real processes on
  one store) keep the clock for an every-second schedule over 20 ticks: exactly
  20 flows, one per tick. Their time is a `FileClock` the test moves one second
  at a time, so the run takes no 20 s of waiting on real time.
- `check_missed_ticks`: ticks that passed while no clock ran: ``run-once``
  starts one flow for them, ``skip`` none, then both go on at the next tick.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from quartermaster_engine import Engine, FlowStatus, NodeResult, SimpleNodeRegistry
from quartermaster_engine.events import ScheduleFired
from quartermaster_engine.runner.schedules import tick_flow_id
from quartermaster_engine.schedules.model import Schedule
from quartermaster_engine.stores.base import KeepsSchedules, ScheduleExistsError
from quartermaster_engine.testing.calls import call
from quartermaster_engine.testing.clock import DEFAULT_START, TestClock
from quartermaster_graph import GraphBuilder, GraphSpec

#: Ticks `check_clocks_fire_each_tick_once` moves the clock through.
TICKS = 20


class FileClock:
    """A clock several processes share: ``now()`` is the number in ``path``, which
    the test writes (`set`). A `quartermaster_engine.clock.Clock`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def set(self, when: float) -> None:
        part = self.path.with_suffix(".part")
        part.write_text(repr(when))
        part.replace(self.path)  # (atomic: a reader never sees half a number)

    def now(self) -> float:
        return float(self.path.read_text())

    async def sleep_until(self, when: float) -> None:
        while self.now() < when:  # noqa: ASYNC110 (another process moves it)
            await asyncio.sleep(0.002)


def tick_graph() -> GraphSpec:
    return GraphBuilder("Tick").start().node("tick", "Tick").end().build()


def _registry() -> SimpleNodeRegistry:
    return SimpleNodeRegistry(
        {"tick": lambda ctx: NodeResult(output_text=f"tick {ctx.input_text}")}
    )


def schedule_clock_main(store: Any, argv: list[str]) -> dict[str, Any]:
    """A clock process: ``schedule-clock CLOCK_FILE STOP_FILE``: keeps the clock
    (`Engine.keep_clock`) on a `FileClock` until STOP_FILE exists and its flows
    have ended; returns the ids of the flows it started."""
    _, clock_file, stop_file = argv[:3]
    started: list[str] = []

    async def main() -> None:
        engine = Engine(store=store, registry=_registry(), clock=FileClock(Path(clock_file)))
        async with engine:
            loop = asyncio.ensure_future(_fire_loop(engine, started))
            while not os.path.exists(stop_file):  # noqa: ASYNC110, ASYNC240 (a test file)
                await asyncio.sleep(0.01)
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
            while engine.active_flows:  # noqa: ASYNC110 (its scheduled flows end)
                await asyncio.sleep(0.01)

    asyncio.run(main())
    return {"started": started}


async def _fire_loop(engine: Engine, started: list[str]) -> None:
    # What keep_clock does each round, keeping the ids this process started.
    engine.running.clock_kept = True
    while True:
        started.extend(str(f) for f in await engine.schedules.fire_due())
        await asyncio.sleep(0.005)


def check_clocks_fire_each_tick_once(
    open_store: Callable[[], Any], start_clock: Callable[..., Any], tmp: Path
) -> dict[str, Any]:
    """Three clock processes (``start_clock(*args)`` returns a started
    `subprocess.Popen` running `schedule_clock_main`) keep the clock for an
    every-second schedule while the test moves their shared clock through
    `TICKS` ticks: exactly one flow per tick, each completed, with one
    ScheduleFired naming its tick. Returns how many each process started."""
    clock = FileClock(tmp / "clock")
    clock.set(DEFAULT_START)
    stop = tmp / "stop"

    async def add() -> Any:
        async with Engine(store=open_store(), registry=_registry(), clock=clock) as engine:
            return await engine.schedules.add(
                "every-second", tick_graph(), "* * * * * *", input="x"
            )

    schedule = asyncio.run(add())
    assert schedule.next_tick == DEFAULT_START + 1
    procs = [start_clock("schedule-clock", str(clock.path), str(stop)) for _ in range(3)]
    store = open_store()
    try:
        time.sleep(0.5)  # (the processes start and look at the clock: nothing is due)
        assert list(call(store, "list_flows")) == []
        for k in range(1, TICKS + 1):
            clock.set(DEFAULT_START + k)
            flow_id = tick_flow_id(schedule, DEFAULT_START + k)
            limit = time.time() + 30
            while call(store, "get_flow", flow_id) is None:
                assert time.time() < limit, f"tick {k}: no flow after 30 s"
                time.sleep(0.005)
            time.sleep(0.05)  # (every clock has looked at this tick before the next)
        stop.touch()
        outs = [proc.communicate(timeout=60) for proc in procs]
        for proc, (_, err) in zip(procs, outs, strict=True):
            assert proc.returncode == 0, err
        started = [json.loads(out.strip().splitlines()[-1])["started"] for out, _ in outs]
        flows = list(call(store, "list_flows"))
        assert len(flows) == TICKS
        assert sorted(str(f) for s in started for f in s) == sorted(str(r.flow_id) for r in flows)
        ticks: list[float] = []
        for record in flows:
            assert record.status is FlowStatus.COMPLETED, record
            assert record.final_output == "tick x"
            fired = [
                e for e in call(store, "read_events", record.flow_id) if e.type == "ScheduleFired"
            ]
            assert len(fired) == 1
            assert isinstance(fired[0], ScheduleFired)
            assert (fired[0].schedule, fired[0].missed) == ("every-second", 0)
            assert record.flow_id == tick_flow_id(schedule, fired[0].tick)
            ticks.append(fired[0].tick)
        assert sorted(ticks) == [DEFAULT_START + k for k in range(1, TICKS + 1)]
        (left,) = call(store, "list_schedules")
        assert left.next_tick == DEFAULT_START + TICKS + 1
    finally:
        stop.touch()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        call(store, "close")
    return {"started": [len(s) for s in started], "stderr": [err for _, err in outs]}


def check_missed_ticks(open_store: Callable[[], Any]) -> dict[str, int]:
    """An hourly schedule of each policy; the clock then jumps 10 hours and 30
    minutes (no clock ran meanwhile): ``run-once`` starts one flow (ScheduleFired
    ``missed`` = 9, for the 10:00 tick), ``skip`` none; one hour later each starts one."""
    clock = TestClock(skip=False)
    seen: list[ScheduleFired] = []

    def keep(event: Any) -> None:
        if isinstance(event, ScheduleFired):
            seen.append(event)

    async def main() -> dict[str, int]:
        engine = Engine(store=open_store(), registry=_registry(), clock=clock, on_event=keep)
        async with engine:
            once = await engine.schedules.add("once", tick_graph(), "0 * * * *", missed="run-once")
            skip = await engine.schedules.add("skip", tick_graph(), "0 * * * *", missed="skip")
            assert await engine.schedules.fire_due() == []  # nothing due yet
            clock.advance("10h30m")
            first = await engine.schedules.fire_due()
            assert first == [tick_flow_id(once, DEFAULT_START + 36000)]
            assert await engine.schedules.fire_due() == []  # claimed: nothing more
            next_ticks = {s.name: s.next_tick for s in await engine.schedules.list()}
            assert next_ticks == {"once": DEFAULT_START + 39600, "skip": DEFAULT_START + 39600}
            clock.advance("30m")
            second = await engine.schedules.fire_due()
            assert sorted(second) == sorted(
                [tick_flow_id(s, DEFAULT_START + 39600) for s in (once, skip)]
            )
            for flow_id in [*first, *second]:
                done = await engine.result(flow_id, wait=True)
                assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "tick ")
        assert [(e.schedule, e.tick, e.missed) for e in seen if e.flow_id == first[0]] == [
            ("once", DEFAULT_START + 36000, 9)
        ]
        return dict(Counter(e.schedule for e in seen))

    return asyncio.run(main())


def check_schedule_store(store: Any) -> None:
    """`KeepsSchedules` on ``store``: add (a name once), list by name, the tick
    compare-and-set (of two claims of one tick exactly one wins), remove."""
    assert isinstance(store, KeepsSchedules)
    first = Schedule("b", tick_graph(), "0 * * * *", next_tick=DEFAULT_START + 3600)
    call(store, "add_schedule", first)
    call(store, "add_schedule", replace(first, name="a", tz="Europe/Paris", input="in"))
    with pytest.raises(ScheduleExistsError) as refused:
        call(store, "add_schedule", first)
    assert str(refused.value) == "a schedule named 'b' already exists; remove it first"
    listed = list(call(store, "list_schedules"))
    assert [(s.name, s.tz, s.input, s.next_tick) for s in listed] == [
        ("a", "Europe/Paris", "in", DEFAULT_START + 3600),
        ("b", "UTC", "", DEFAULT_START + 3600),
    ]
    assert listed[1].graph == first.graph
    tick, following = DEFAULT_START + 3600, DEFAULT_START + 7200
    assert call(store, "claim_tick", "b", tick, following) is True
    assert call(store, "claim_tick", "b", tick, following) is False  # claimed already
    assert call(store, "claim_tick", "nope", tick, following) is False
    assert [s.next_tick for s in call(store, "list_schedules")] == [tick, following]
    assert call(store, "remove_schedule", "b") is True
    assert call(store, "remove_schedule", "b") is False
    assert call(store, "claim_tick", "b", following, following + 3600) is False
    assert [s.name for s in call(store, "list_schedules")] == ["a"]
    assert call(store, "remove_schedule", "a") is True


__all__ = [
    "FileClock",
    "check_clocks_fire_each_tick_once",
    "check_missed_ticks",
    "check_schedule_store",
    "schedule_clock_main",
    "tick_graph",
]
