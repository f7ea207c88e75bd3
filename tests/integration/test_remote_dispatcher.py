"""The runner's side of `RemoteDispatcher`, with a second implementation of the
protocol: "workers" that are asyncio tasks of another engine (`TaskFleet`), sharing
only a SQLite file with the client. The client runs no node; it stores the flow, hands
it over, relays the durable log and returns the stored result."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from qm_store_sqlite import SQLiteStore
from quartermaster_engine import FlowRunner, FlowStatus, NodeResult, SimpleNodeRegistry
from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.dispatchers import AsyncDispatcher
from quartermaster_engine.dispatchers.remote import RemoteDispatcher, is_remote
from quartermaster_engine.events import FlowEvent
from quartermaster_engine.runner.errors import MissingExecutorError
from quartermaster_engine.runner.stepper import FlowStepper
from quartermaster_engine.testing import build_graph, call
from quartermaster_engine.testing.task_fleet import TaskFleet

GRAPH = build_graph(
    {
        "Start": "Start1",
        "A": "remote.work",
        "B": "remote.work",
        "J": {"type": "remote.join", "traverse_in": "AwaitAll"},
        "Ask": "remote.ask",
        "End": "End1",
    },
    [("Start", "A"), ("Start", "B"), ("A", "J"), ("B", "J"), ("J", "Ask"), ("Ask", "End")],
    name="remote",
)


def task_workers(path: Path, ran: Counter[str]) -> TaskFleet:
    """A fleet of tasks with the executors the client lacks, on the shared store."""

    def work(ctx: ExecutionContext) -> str:
        ran[ctx.current_node.name] += 1
        return ctx.current_node.name

    def ask(ctx: ExecutionContext) -> NodeResult:
        ran["Ask"] += 1
        if ctx.user_input is None:
            return NodeResult(wait_for_user=True, user_prompt="Name?")
        return NodeResult(output_text=f"{ctx.input_text} {ctx.user_input}")

    registry = SimpleNodeRegistry(
        {"remote.work": work, "remote.join": lambda c: "+".join(c.input_text.split("\n")),
         "remote.ask": ask}
    )  # fmt: skip
    return TaskFleet(SQLiteStore(path), registry)


@pytest.fixture
def workers(tmp_path: Path) -> Any:
    ran: Counter[str] = Counter()
    dispatcher = task_workers(tmp_path / "flows.db", ran)
    yield dispatcher, ran
    dispatcher.shutdown()


def test_the_client_runs_nothing_and_returns_the_stored_result(
    tmp_path: Path, workers: Any
) -> None:
    dispatcher, ran = workers
    assert is_remote(dispatcher)
    assert isinstance(dispatcher, RemoteDispatcher)
    events: list[FlowEvent] = []
    store = SQLiteStore(tmp_path / "flows.db")
    # No registry with the remote types: the client could not run them, and need not.
    client = FlowRunner(GRAPH, store=store, dispatcher=dispatcher, on_event=events.append)

    async def go() -> tuple[Any, Any]:
        paused = await client.arun("hi")
        done = await client.aresume(paused.flow_id, "Bob")
        return paused, done

    paused, done = asyncio.run(go())
    assert paused.status is FlowStatus.PAUSED
    assert [w.node_name for w in paused.waiting] == ["Ask"]
    assert done.status is FlowStatus.COMPLETED
    assert done.final_output == "A+B Bob"
    assert ran == {"A": 1, "B": 1, "Ask": 2}
    # Every logged event reached the client's listener once, in order.
    logged = call(store, "read_events", done.flow_id)
    assert [e.seq for e in events] == [e.seq for e in logged]
    assert [e.type for e in events] == [e.type for e in logged]
    assert Counter(e.type for e in events)["FlowPaused"] == 1
    call(store, "close")


def test_submit_hands_over_and_stop_ends_the_flow(tmp_path: Path, workers: Any) -> None:
    dispatcher, ran = workers
    store = SQLiteStore(tmp_path / "flows.db")
    client = FlowRunner(GRAPH, store=store, dispatcher=dispatcher)

    async def go() -> Any:
        fid = await client.asubmit("hi")
        await dispatcher.settle()
        await client.astop(fid)
        return await client.aget_result(fid)

    result = asyncio.run(go())
    assert result.status is FlowStatus.STOPPED
    assert ran == {"A": 1, "B": 1, "Ask": 1}
    call(store, "close")


def test_a_stepper_without_the_executor_refuses_and_writes_nothing(
    tmp_path: Path, workers: Any
) -> None:
    dispatcher, _ = workers
    store = SQLiteStore(tmp_path / "flows.db")
    lacking = FlowRunner(GRAPH, SimpleNodeRegistry({}), store=store)
    stepper = FlowStepper(lacking)

    async def go() -> tuple[str, int, int]:
        fid = await _submit(dispatcher)
        before = (await lacking.store_adapter.get_flow(fid)).version
        (ref, _), _b = await stepper.pending(fid)
        with pytest.raises(MissingExecutorError) as caught:
            await stepper.execute(fid, ref)
        after = (await lacking.store_adapter.get_flow(fid)).version
        return str(caught.value), before, after

    message, before, after = asyncio.run(go())
    assert message.startswith("no executor for node type 'remote.work' (node 'A' (")
    assert before == after
    call(store, "close")


async def _submit(dispatcher: TaskFleet) -> UUID:
    """A flow stored with Start run: A and B pending, nothing dispatched."""
    fid = await dispatcher.engine.submit(GRAPH, "hi")
    stepper = FlowStepper(dispatcher.engine)
    ((start, _),) = await stepper.pending(fid)
    work = await stepper.execute(fid, start)
    assert work is not None
    await stepper.complete(work)
    return fid


def test_a_stop_reaches_an_executor_running_outside_the_lease(tmp_path: Path) -> None:
    seen: list[bool] = []

    def hang(ctx: ExecutionContext) -> str:
        while not ctx.cancelled:
            time.sleep(0.01)
        seen.append(ctx.cancelled)
        return "stopped"

    graph = build_graph({"Start": "Start1", "H": "hang"}, [("Start", "H")])
    store = SQLiteStore(tmp_path / "stop.db")
    # A concurrent dispatcher: the blocking executor runs off the loop, so the
    # watch for a stop runs beside it.
    registry = SimpleNodeRegistry({"hang": hang})
    runner = FlowRunner(graph, registry, store=store, dispatcher=AsyncDispatcher())
    stepper = FlowStepper(runner)

    async def go() -> Any:
        fid = await runner.asubmit("x")
        ((start, _),) = await stepper.pending(fid)
        await stepper.complete(await stepper.execute(fid, start))  # type: ignore[arg-type]
        ((h, _),) = await stepper.pending(fid)
        running = asyncio.ensure_future(stepper.execute(fid, h, stop_poll=0.05))
        await asyncio.sleep(0.2)
        assert not running.done()
        await runner.astop(fid)
        # The stop cancelled the call: no work to complete, nothing more pending.
        assert await asyncio.wait_for(running, 10) is None
        for _ in range(500):
            if seen:
                break
            await asyncio.sleep(0.01)
        return await runner.aget_result(fid)

    result = asyncio.run(go())
    assert seen == [True]
    assert result.status is FlowStatus.STOPPED
    call(store, "close")


def test_a_fork_at_the_last_checkpoint_ends_through_a_remote_dispatcher(
    tmp_path: Path, workers: Any
) -> None:
    """A fork after the flow's last record has nothing for the workers: the client
    records its end itself instead of waiting for workers that have nothing to do."""
    dispatcher, ran = workers
    store = SQLiteStore(tmp_path / "flows.db")
    client = FlowRunner(GRAPH, store=store, dispatcher=dispatcher)

    async def go() -> tuple[Any, int, Any]:
        paused = await client.arun("hi")
        done = await client.aresume(paused.flow_id, "Bob")
        history = await client.engine.history(done.flow_id)
        ran.clear()
        fork_id = await client.engine.fork(done.flow_id, at=len(history))
        return done, len(history), await asyncio.wait_for(client.engine.recover(fork_id), 30)

    done, checkpoints, forked = asyncio.run(go())
    assert checkpoints == 7  # Start, A, B, J, Ask (paused), Ask, End
    assert (forked.status, forked.final_output) == (FlowStatus.COMPLETED, done.final_output)
    assert forked.flow_id != done.flow_id
    assert ran == {}
    call(store, "close")
