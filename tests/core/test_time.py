"""Time: the engine's clock, `TestClock`, and durable sleep (Sleep1 / ``.sleep``)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest

from quartermaster_engine import (
    Engine,
    ExecutionContext,
    FlowEvent,
    FlowRunner,
    FlowStatus,
    NodeResult,
    SimpleNodeRegistry,
)
from quartermaster_engine.clock import SYSTEM_CLOCK, Clock, SystemClock
from quartermaster_engine.events import TimerFired, TimerSet, event_from_dict
from quartermaster_engine.runner.executors import NodeConfigError
from quartermaster_engine.stores.memory_store import InMemoryStore
from quartermaster_engine.stores.sqlite_store import SQLiteStore
from quartermaster_engine.testing import TestClock, call
from quartermaster_engine.testing.schedules import check_missed_ticks, check_schedule_store
from quartermaster_graph import GraphBuilder, GraphSpec

from .support import build

START = TestClock().now()  # 2030-01-01T00:00:00Z


def up(ctx: ExecutionContext) -> NodeResult:
    return NodeResult(output_text=ctx.input_text.upper() + "!")


REG = SimpleNodeRegistry({"up": up})


def nap_graph(duration: str | float | None = "24h", until: str | None = None) -> GraphSpec:
    b = GraphBuilder("Nap").start().node("up", "A")
    b = b.sleep("nap", duration, until=until) if until is None else b.sleep("nap", until=until)
    return b.node("up", "B").end().build()


def test_the_default_clock_is_real_time() -> None:
    engine = Engine(registry=REG)
    assert engine.clock is SYSTEM_CLOCK
    assert isinstance(SYSTEM_CLOCK, SystemClock)
    assert isinstance(TestClock(), Clock)
    assert abs(SYSTEM_CLOCK.now() - time.time()) < 0.1


def test_a_24h_sleep_ends_in_milliseconds_with_the_test_clock() -> None:
    clock = TestClock()
    events: list[FlowEvent] = []
    runner = FlowRunner(nap_graph("24h"), REG, on_event=events.append, clock=clock)
    began = time.perf_counter()
    result = runner.run("hi")
    took = time.perf_counter() - began
    assert (result.status, result.final_output) == (FlowStatus.COMPLETED, "HI!!")
    assert took < 0.5
    assert clock.now() == START + 86400
    kinds = [e.type for e in events if e.type.startswith("Timer")]
    assert kinds == ["TimerSet", "TimerFired"]
    timer_set = next(e for e in events if isinstance(e, TimerSet))
    fired = next(e for e in events if isinstance(e, TimerFired))
    assert (timer_set.wake_at, timer_set.wake_iso) == (START + 86400, "2030-01-02T00:00:00+00:00")
    assert (fired.wake_at, fired.late, fired.node_name) == (START + 86400, 0.0, "nap")
    nap = next(n.id for n in runner.graph.nodes if n.name == "nap")
    assert result.node_results[nap].output_text == "HI!"


def test_a_clock_that_does_not_skip_waits_for_the_test_to_move_it() -> None:
    clock = TestClock(skip=False)

    async def main() -> None:
        seen: list[str] = []
        async with Engine(registry=REG, clock=clock) as engine:
            running = asyncio.ensure_future(
                engine.run(nap_graph("10m"), "hi", on_event=lambda e: seen.append(e.type))
            )
            await asyncio.sleep(0.05)
            assert seen[-2:] == ["TimerSet", "FlowPaused"]  # parked, run() waits it out
            clock.advance("9m")
            await asyncio.sleep(0.05)
            assert seen[-1] == "FlowPaused"  # a minute to go
            clock.advance(60)
            done = await running
            assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "HI!!")
            assert seen.count("TimerFired") == 1

    asyncio.run(main())


def test_sleep_until_an_iso_time() -> None:
    clock = TestClock()
    runner = FlowRunner(nap_graph(until="2030-01-01T09:30:00+00:00"), REG, clock=clock)
    assert runner.run("x").final_output == "X!!"
    assert clock.now() == START + 9.5 * 3600


def test_an_until_in_the_past_does_not_wait() -> None:
    clock = TestClock()
    runner = FlowRunner(nap_graph(until="2001-01-01T00:00:00+00:00"), REG, clock=clock)
    assert runner.run("x").final_output == "X!!"
    assert clock.now() == START


def test_seconds_and_compound_durations() -> None:
    for duration, seconds in ((90, 90.0), ("1d12h", 129600.0), ("500ms", 0.5)):
        clock = TestClock()
        assert FlowRunner(nap_graph(duration), REG, clock=clock).run("x").final_output == "X!!"
        assert clock.now() == START + seconds


def test_a_durable_store_sleeps_with_the_test_clock(tmp_path: Path) -> None:
    clock = TestClock()
    store = SQLiteStore(tmp_path / "flows.db")
    runner = FlowRunner(nap_graph("24h"), REG, store=store, clock=clock)
    result = runner.run("hi")
    assert (result.status, result.final_output) == (FlowStatus.COMPLETED, "HI!!")
    logged = [e for e in call(store, "read_events", result.flow_id) if e.type.startswith("Timer")]
    assert [(e.type, e.wake_at) for e in logged] == [
        ("TimerSet", START + 86400),
        ("TimerFired", START + 86400),
    ]
    runner.close()
    call(store, "close")


def test_a_retry_delay_waits_on_the_engine_clock() -> None:
    calls: list[float] = []
    clock = TestClock()

    def flaky(ctx: ExecutionContext) -> NodeResult:
        calls.append(clock.now())
        if len(calls) < 3:
            return NodeResult(success=False, error="not yet")
        return NodeResult(output_text="ok")

    graph = build(
        {
            "Start": "Start1",
            "F": {"type": "flaky", "error_handling": "Retry", "max_retries": 3, "retry_delay": 600},
            "End": "End1",
        },
        [("Start", "F"), ("F", "End")],
    )
    result = FlowRunner(graph, SimpleNodeRegistry({"flaky": flaky}), clock=clock).run("x")
    assert result.final_output == "ok"
    assert [c - START for c in calls] == [0.0, 600.0, 1800.0]


def test_timer_events_round_trip() -> None:
    flow_id = uuid4()
    event = TimerSet(
        flow_id=flow_id, node_name="nap", wake_at=1.5, wake_iso="1970-01-01T00:00:01.500000+00:00"
    )
    assert event_from_dict(event.to_dict()) == event
    fired = TimerFired(flow_id=flow_id, node_name="nap", wake_at=1.5, late=0.25)
    assert event_from_dict(fired.to_dict()) == fired


def test_the_builder_refuses_bad_sleeps() -> None:
    with pytest.raises(ValueError, match=r"^sleep\('n'\): give a duration or until=, not both"):
        GraphBuilder("g").start().sleep("n")
    with pytest.raises(ValueError, match=r"^sleep\('n'\): give a duration or until=, not both"):
        GraphBuilder("g").start().sleep("n", "1h", until="2030-01-01T00:00:00+00:00")
    with pytest.raises(ValueError, match=r"^sleep\('n'\): until='2030-01-01T00:00:00' has no"):
        GraphBuilder("g").start().sleep("n", until="2030-01-01T00:00:00")
    with pytest.raises(ValueError, match=r"^sleep\('n'\): until='soon' is not an ISO 8601 time"):
        GraphBuilder("g").start().sleep("n", until="soon")
    with pytest.raises(ValueError, match=r"^sleep\('n'\): duration must not be negative$"):
        GraphBuilder("g").start().sleep("n", -1)
    aware = datetime(2030, 1, 1, tzinfo=UTC)
    spec = GraphBuilder("g").start().sleep("n", until=aware).end().build()
    assert next(n for n in spec.nodes if n.name == "n").metadata["until"] == aware.isoformat()


def test_a_bad_duration_is_refused_before_the_flow_starts() -> None:
    nodes = {"Start": "Start1", "N": {"type": "Sleep1", "metadata": {"duration": "soon"}}}
    graph = build({**nodes, "End": "End1"}, [("Start", "N"), ("N", "End")])
    with pytest.raises(NodeConfigError) as caught:
        FlowRunner(graph, REG).run("x")
    assert str(caught.value) == (
        "graph test-graph has invalid node settings:\n"
        "  node 'N' (5c32928c-f67c-5928-8064-be95d34171d2): "
        "'soon' is not a duration like 90s, 15m, 12h, 7d, 2w or 1d12h"
    )


def test_a_clock_loop_wakes_parked_flows_and_no_task_holds_them() -> None:
    clock = TestClock(skip=False)

    async def main() -> None:
        seen: list[FlowEvent] = []
        async with Engine(registry=REG, clock=clock, on_event=seen.append) as engine:
            loop = asyncio.ensure_future(engine.keep_clock(every=0.005))
            await asyncio.sleep(0.01)
            ids = [await engine.start(nap_graph("10m"), f"f{i}") for i in range(3)]
            await asyncio.sleep(0.05)
            assert engine.active_flows == []  # parked: nothing of them runs here
            assert not engine.running.has_tasks
            paused = [e for e in seen if e.type == "FlowPaused"]
            assert [e.wakes_at for e in paused] == [START + 600] * 3  # type: ignore[attr-defined]
            clock.advance("10m")
            for flow_id, i in zip(ids, range(3), strict=True):
                done = await engine.result(flow_id, wait=True)
                while done.status is FlowStatus.PAUSED:
                    await asyncio.sleep(0.005)
                    done = await engine.result(flow_id)
                assert (done.status, done.final_output) == (FlowStatus.COMPLETED, f"F{i}!!")
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
            assert engine.running.clock_kept is False
        assert sum(e.type == "TimerFired" for e in seen) == 3

    asyncio.run(main())


def test_wake_due_wakes_only_due_flows_once() -> None:
    clock = TestClock(skip=False)

    async def main() -> None:
        async with Engine(registry=REG, clock=clock) as engine:
            engine.running.clock_kept = True  # flows started here park
            soon = await engine.start(nap_graph("1m"), "soon")
            late = await engine.start(nap_graph("1h"), "late")
            while engine.active_flows:  # noqa: ASYNC110 (no event says they parked)
                await asyncio.sleep(0.005)
            assert await engine.wake_due() == []
            clock.advance("1m")
            assert await engine.wake_due() == [soon]
            assert (await engine.result(soon)).final_output == "SOON!!"
            assert await engine.wake_due() == []
            parked = await engine.result(late)
            assert (parked.status, parked.wakes_at) == (FlowStatus.PAUSED, START + 3600)
            clock.advance("1h")
            assert await engine.wake_due() == [late]
            assert (await engine.result(late)).final_output == "LATE!!"

    asyncio.run(main())


def test_run_on_an_engine_that_keeps_the_clock_returns_the_parked_flow() -> None:
    clock = TestClock(skip=False)

    async def main() -> None:
        async with Engine(registry=REG, clock=clock) as engine:
            engine.running.clock_kept = True
            parked = await engine.run(nap_graph("2h"), "x")
            assert (parked.status, parked.wakes_at, parked.waiting) == (
                FlowStatus.PAUSED,
                START + 7200,
                [],
            )
            engine.running.clock_kept = False
            clock.advance("2h")
            done = await engine.recover(parked.flow_id)
            assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "X!!")

    asyncio.run(main())


def ask(ctx: ExecutionContext) -> NodeResult:
    if ctx.user_input is None:
        return NodeResult(wait_for_user=True, user_prompt="ok?")
    return NodeResult(output_text=f"answer: {ctx.user_input}")


def ask_graph(timeout: str | float = "24h", on_timeout: str = "no reply") -> GraphSpec:
    meta = {"timeout": timeout, "on_timeout": on_timeout}
    nodes = {"Start": "Start1", "Ask": {"type": "ask", "metadata": meta}, "End": "End1"}
    return build(nodes, [("Start", "Ask"), ("Ask", "End")])


ASK = SimpleNodeRegistry({"ask": ask})


def test_a_deadline_passed_answers_with_on_timeout() -> None:
    clock = TestClock(skip=False)

    async def main() -> None:
        seen: list[FlowEvent] = []
        async with Engine(registry=ASK, clock=clock, on_event=seen.append) as engine:
            paused = await engine.run(ask_graph("24h"), "x")  # returns at once: it waits
            assert (paused.status, paused.wakes_at) == (FlowStatus.PAUSED, START + 86400)
            assert [w.node_name for w in paused.waiting] == ["Ask"]
            asked = next(e for e in seen if e.type == "UserInputRequired")
            assert asked.deadline == START + 86400  # type: ignore[attr-defined]
            assert await engine.wake_due() == []
            clock.advance("24h")
            assert await engine.wake_due() == [paused.flow_id]
            done = await engine.result(paused.flow_id)
            assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "answer: no reply")
            passed = [e for e in seen if e.type == "DeadlinePassed"]
            assert [(e.deadline, e.answer) for e in passed] == [(START + 86400, "no reply")]  # type: ignore[attr-defined]
            assert await engine.wake_due() == []

    asyncio.run(main())


def test_an_answer_before_the_deadline_wins_and_the_deadline_does_nothing() -> None:
    clock = TestClock(skip=False)

    async def main() -> None:
        seen: list[str] = []
        async with Engine(
            registry=ASK, clock=clock, on_event=lambda e: seen.append(e.type)
        ) as engine:
            paused = await engine.run(ask_graph("1h"), "x")
            clock.advance("30m")
            done = await engine.resume(paused.flow_id, "yes")
            assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "answer: yes")
            clock.advance("1h")
            assert await engine.wake_due() == []
            assert "DeadlinePassed" not in seen

    asyncio.run(main())


def test_recover_after_the_deadline_fires_it() -> None:
    clock = TestClock(skip=False)

    async def main() -> None:
        async with Engine(registry=ASK, clock=clock) as engine:
            paused = await engine.run(ask_graph(90), "x")
            early = await engine.recover(paused.flow_id)
            assert early.status is FlowStatus.PAUSED  # not yet
            clock.advance(90)
            done = await engine.recover(paused.flow_id)
            assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "answer: no reply")

    asyncio.run(main())


def test_the_builder_takes_a_deadline_on_user_nodes() -> None:
    spec = GraphBuilder("g").start().user("Ask", ["ok?"], timeout="24h", on_timeout="no").end()
    node = next(n for n in spec.build().nodes if n.name == "Ask")
    assert (node.metadata["timeout"], node.metadata["on_timeout"]) == ("24h", "no")
    with pytest.raises(ValueError, match=r"^user\('Ask'\): give timeout and on_timeout together$"):
        GraphBuilder("g").start().user("Ask", timeout="1h")


def test_the_memory_store_keeps_schedules() -> None:
    check_schedule_store(InMemoryStore())


def test_missed_ticks_on_the_memory_store() -> None:
    assert check_missed_ticks(lambda: None) == {"once": 2, "skip": 1}


def test_keep_clock_fires_a_due_schedule_once_per_tick() -> None:
    clock = TestClock(skip=False)
    graph = GraphBuilder("Up").start().node("up", "A").end().build()

    async def main() -> None:
        seen: list[FlowEvent] = []
        async with Engine(registry=REG, clock=clock, on_event=seen.append) as engine:
            added = await engine.schedules.add("m", graph, "* * * * *", input="hi")
            assert added.next_tick == START + 60
            loop = asyncio.ensure_future(engine.keep_clock(every=0.005))
            await asyncio.sleep(0.03)
            assert [e for e in seen if e.type == "ScheduleFired"] == []
            for minute in (1, 2):
                clock.advance("1m")
                while sum(e.type == "FlowFinished" for e in seen) < minute:  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
            await asyncio.sleep(0.03)  # (more rounds: nothing more is due)
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
        fired = [e for e in seen if e.type == "ScheduleFired"]
        assert [(e.schedule, e.tick, e.missed) for e in fired] == [  # type: ignore[attr-defined]
            ("m", START + 60, 0),
            ("m", START + 120, 0),
        ]
        finished = [e for e in seen if e.type == "FlowFinished"]
        assert [e.final_output for e in finished] == ["HI!", "HI!"]  # type: ignore[attr-defined]

    asyncio.run(asyncio.wait_for(main(), 10))  # (no flow: a timeout, not a hang)
