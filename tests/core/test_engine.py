"""`Engine`: one object serves every graph and flow of a process, by flow id;
`FlowRunner` is a front over one (its own, or one passed in)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from support import Trace, build, chain

from qm_store_sqlite import SQLiteStore
from quartermaster_engine import (
    Engine,
    FlowEvent,
    FlowNotFoundError,
    FlowRunner,
    FlowStatus,
    InMemoryStore,
    NodeResult,
)
from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.runner import FlowStateError
from quartermaster_engine.runner.stepper import FlowStepper
from quartermaster_engine.testing import call


def _ask(ctx: ExecutionContext) -> NodeResult:
    if ctx.user_input is None:
        return NodeResult(wait_for_user=True, user_prompt="Name?")
    return NodeResult(output_text=f"hello {ctx.user_input}")


ASKING = build({"Start": "Start1", "Ask": "ask", "End": "End1"}, [("Start", "Ask"), ("Ask", "End")])


def test_one_engine_runs_flows_of_two_graphs_and_resumes_by_id_alone() -> None:
    trace = Trace().on("step").on("ask", _ask)
    events: list[FlowEvent] = []

    async def go() -> tuple[Any, Any, Any]:
        async with Engine(registry=trace.registry, on_event=events.append) as engine:
            three = await engine.run(chain(3), "x")
            paused = await engine.run(ASKING, "hi")
            # No graph given: the flow brings its own (the store's snapshot).
            done = await engine.resume(paused.flow_id, "Bob")
            return three, paused, done

    three, paused, done = asyncio.run(go())
    assert (three.status, three.final_output) == (FlowStatus.COMPLETED, "n0(x)")
    assert paused.status is FlowStatus.PAUSED
    assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "hello Bob")
    assert trace.names() == ["n0", "Ask", "Ask"]
    assert [e.type for e in events if e.flow_id == done.flow_id][-1] == "FlowFinished"


def test_start_returns_the_id_and_result_waits_for_the_flow() -> None:
    trace = Trace().on("step")

    async def go() -> tuple[Any, Any, list[str]]:
        async with Engine(registry=trace.registry) as engine:
            flow_id = await engine.start(chain(4), "go")
            result = await engine.result(flow_id, wait=True)
            records = await engine.flows.list()
            logged = [e.type async for e in engine.events(flow_id)]
            return flow_id, result, [str(r.flow_id) for r in records] + logged

    flow_id, result, seen = asyncio.run(go())
    assert result.flow_id == flow_id
    assert (result.status, result.final_output) == (FlowStatus.COMPLETED, "n1(n0(go))")
    assert seen[0] == str(flow_id)
    assert seen[1:] == [
        "FlowStarted",
        "NodeStarted",
        "NodeFinished",
        "NodeStarted",
        "NodeFinished",
        "NodeStarted",
        "NodeFinished",
        "NodeStarted",
        "NodeFinished",
        "FlowFinished",
    ]


def test_flows_show_and_delete_by_id() -> None:
    trace = Trace().on("step")

    async def go() -> tuple[Any, str]:
        async with Engine(registry=trace.registry) as engine:
            result = await engine.run(chain(3), "x")
            snapshot = await engine.flows.show(result.flow_id)
            await engine.flows.delete(result.flow_id)
            with pytest.raises(FlowNotFoundError) as missing:
                await engine.flows.get(result.flow_id)
            return snapshot, str(missing.value)

    snapshot, missing = asyncio.run(go())
    assert snapshot.flow.status is FlowStatus.COMPLETED
    assert snapshot.flow.graph.name == "test-graph"
    assert missing == f"no flow {snapshot.flow.flow_id} in the store (InMemoryStore)"


def test_runners_of_two_graphs_share_one_engine_and_keep_their_own_listeners() -> None:
    trace = Trace().on("step").on("ask", _ask)
    engine = Engine(registry=trace.registry)
    mine: list[FlowEvent] = []
    theirs: list[FlowEvent] = []
    first = FlowRunner(chain(3), engine=engine, on_event=mine.append)
    second = FlowRunner(ASKING, engine=engine, on_event=theirs.append)
    done = first.run("a")
    paused = second.run("b")
    # A runner resumes any flow of its engine, whatever the graph.
    resumed = first.resume(paused.flow_id, "Ann")
    assert first.store is second.store is engine.store
    assert done.final_output == "n0(a)"
    assert resumed.final_output == "hello Ann"
    assert {e.flow_id for e in mine} == {done.flow_id, paused.flow_id}
    assert {e.flow_id for e in theirs} == {paused.flow_id}
    assert [e.type for e in theirs][-1] == "FlowPaused"
    # Closing a runner leaves a shared engine open.
    first.close()
    assert second.run("c").status is FlowStatus.PAUSED


def test_a_runner_on_a_shared_engine_refuses_parts_of_its_own() -> None:
    engine = Engine()
    with pytest.raises(TypeError) as refused:
        FlowRunner(chain(3), store=InMemoryStore(), engine=engine)
    assert str(refused.value) == (
        "FlowRunner(engine=...) uses the engine's parts; do not also pass store"
    )


def test_an_engine_closes_what_it_built_from_config_and_keeps_what_it_was_given(
    tmp_path: Path,
) -> None:
    given = SQLiteStore(tmp_path / "given.db")
    engine = Engine.from_config(
        {"store": {"name": "sqlite", "path": str(tmp_path / "own.db")}},
        dispatcher={"name": "async"},
    )
    assert len(engine.owned) == 2  # the store and the dispatcher it built
    engine.close()
    assert engine.owned == ()
    sharing = Engine.from_config({}, store=given)
    assert given not in sharing.owned
    sharing.close()
    # The given store still works after the engine closed.
    assert FlowRunner(chain(3), Trace().on("step").registry, store=given).run("x").success
    call(given, "close")


def test_a_stepper_takes_an_engine(tmp_path: Path) -> None:
    trace = Trace().on("step")
    engine = Engine(SQLiteStore(tmp_path / "flows.db"), registry=trace.registry)
    stepper = FlowStepper(engine)

    async def go() -> Any:
        flow_id = await engine.submit(chain(3), "s")
        return await stepper.run_to_end(flow_id)

    done = asyncio.run(go())
    assert done.status is FlowStatus.COMPLETED
    assert done.result is not None
    assert done.result.final_output == "n0(s)"
    call(engine.store, "close")


def test_a_flow_id_running_in_the_engine_cannot_be_started_again() -> None:
    release = asyncio.Event()

    async def slow(ctx: ExecutionContext) -> str:
        await release.wait()
        return "ok"

    trace = Trace().on("step", slow)

    async def go() -> str:
        async with Engine(registry=trace.registry) as engine:
            flow_id = await engine.start(chain(3), "x")
            await asyncio.sleep(0)
            with pytest.raises(FlowStateError) as refused:
                await engine.run(chain(3), "again", flow_id)
            release.set()
            await engine.result(flow_id, wait=True)
            return str(refused.value)

    assert asyncio.run(go()).endswith("is already running in this process")


def test_the_engine_docs_tour_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "engine.md").read_text()
    tour = doc.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(tour, "docs/engine.md", "exec"), {"__name__": "tour"})
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == ["HELLO", "AGAIN", "['completed', 'completed']"]
    assert lines[3].startswith("FlowResult(")
    assert "final_output='FRONT'" in lines[3]
