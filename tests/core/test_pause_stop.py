"""Pause for a person and resume; stop a running flow."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from support import Trace, build, node_id

from quartermaster_engine import (
    AsyncDispatcher,
    ExecutionContext,
    FlowFinished,
    FlowRunner,
    FlowStateError,
    FlowStatus,
    InMemoryStore,
    MessageRole,
    NodeResult,
    UserInputRequired,
)


def ask(ctx: ExecutionContext) -> NodeResult:
    """A User-style node: waits until it has an answer, then outputs it."""
    if ctx.user_input is None:
        return NodeResult(
            wait_for_user=True,
            user_prompt=f"{ctx.current_node.name}?",
            user_options=["yes", "no"],
        )
    return NodeResult(output_text=ctx.user_input)


def approval_graph() -> object:
    return build(
        {
            "Start": "Start1",
            "Draft": "step",
            "Approve": {"type": "ask", "message_type": "User"},
            "Publish": "step",
            "End": "End1",
        },
        [("Start", "Draft"), ("Draft", "Approve"), ("Approve", "Publish"), ("Publish", "End")],
    )


def test_a_waiting_node_pauses_the_flow_and_resume_completes_it() -> None:
    trace = Trace().on("step").on("ask", ask)
    runner = FlowRunner(approval_graph(), trace.registry, on_event=trace.events.append)
    paused = runner.run("text")
    assert paused.status is FlowStatus.PAUSED
    assert paused.success is False
    assert paused.final_output == ""
    assert [(w.node_name, w.prompt, w.options) for w in paused.waiting] == [
        ("Approve", "Approve?", ["yes", "no"])
    ]
    assert trace.event_types()[-2:] == ["UserInputRequired", "FlowPaused"]
    assert trace.events_of(FlowFinished) == []
    required = trace.events_of(UserInputRequired)
    assert [(e.node_id, e.prompt, e.options) for e in required] == [
        (node_id("Approve"), "Approve?", ["yes", "no"])
    ]

    trace.events.clear()
    done = runner.resume(paused.flow_id, "yes")
    assert done.status is FlowStatus.COMPLETED
    assert done.final_output == "Publish(yes)"
    assert trace.names() == ["Draft", "Approve", "Approve", "Publish"]
    resumed = [c for c in trace.calls if c.node == "Approve"][1]
    assert resumed.user_input == "yes"
    assert [(m.role, m.content) for m in resumed.context.messages] == [(MessageRole.USER, "yes")]
    assert trace.event_types()[0] == "FlowResumed"
    assert trace.event_types()[-1] == "FlowFinished"
    # Sequence numbers continue across the resume.
    assert trace.events[0].seq == required[0].seq + 2


def test_two_waiting_branches_are_resumed_one_by_one_by_node() -> None:
    trace = Trace().on("ask", ask).on("step")
    graph = build(
        {
            "Start": "Start1",
            "Q1": "ask",
            "Q2": "ask",
            "J": {"type": "step", "traverse_in": "AwaitAll"},
            "End": "End1",
        },
        [("Start", "Q1"), ("Start", "Q2"), ("Q1", "J"), ("Q2", "J"), ("J", "End")],
    )
    runner = FlowRunner(graph, trace.registry)
    first = runner.run("hi")
    assert [w.node_name for w in first.waiting] == ["Q1", "Q2"]
    second = runner.resume(first.flow_id, "b", node_id=node_id("Q2"))
    assert second.status is FlowStatus.PAUSED
    assert [w.node_name for w in second.waiting] == ["Q1"]
    assert trace.count("J") == 0
    third = runner.resume(first.flow_id, "a", node_id="Q1")
    assert third.status is FlowStatus.COMPLETED
    assert third.final_output == "J(a\nb)"
    assert trace.count("J") == 1


def test_resume_errors_are_clear() -> None:
    trace = Trace().on("step").on("ask", ask)
    runner = FlowRunner(approval_graph(), trace.registry)
    paused = runner.run("text")
    with pytest.raises(FlowStateError, match=r"node 'Nope' of flow \S+ is not waiting for input"):
        runner.resume(paused.flow_id, "x", node_id="Nope")
    done = runner.resume(paused.flow_id, "ok")
    with pytest.raises(FlowStateError, match=f"flow {done.flow_id} is completed"):
        runner.resume(done.flow_id, "again")


def test_paused_flow_resumes_with_a_store_shared_by_another_runner() -> None:
    store = InMemoryStore()
    trace = Trace().on("step").on("ask", ask)
    paused = FlowRunner(approval_graph(), trace.registry, store=store).run("text")
    other = FlowRunner(approval_graph(), trace.registry, store=store)
    assert other.resume(paused.flow_id, "yes").final_output == "Publish(yes)"


class Legacy:
    """A 0.1.5-style store: plain def methods, none of the durable ones."""

    def __init__(self) -> None:
        self.inner = InMemoryStore()

    def __getattr__(self, name: str) -> object:
        if name in {"create_flow", "commit", "load_flow"}:
            raise AttributeError(name)
        return getattr(self.inner, name)


def test_pause_and_resume_work_on_a_store_without_the_durable_contract() -> None:
    store = Legacy()
    trace = Trace().on("step").on("ask", ask)
    runner = FlowRunner(approval_graph(), trace.registry, store=store)
    paused = runner.run("text")
    assert paused.status is FlowStatus.PAUSED
    assert runner.resume(paused.flow_id, "yes").final_output == "Publish(yes)"
    records = store.get_all_node_executions(paused.flow_id)
    assert records[node_id("Publish")].result == "Publish(yes)"
    assert [m.content for m in store.get_messages(paused.flow_id, node_id("Publish"))] == [
        "Publish(yes)"
    ]


def test_stop_cancels_the_running_async_executor_and_starts_nothing_new() -> None:
    cancelled = asyncio.Event()
    running = asyncio.Event()

    async def slow(ctx: ExecutionContext) -> str:
        running.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    trace = Trace().on("slow", slow).on("step")
    graph = build(
        {"Start": "Start1", "Slow": "slow", "After": "step", "End": "End1"},
        [("Start", "Slow"), ("Slow", "After"), ("After", "End")],
    )
    runner = FlowRunner(graph, trace.registry, on_event=trace.events.append)

    async def scenario() -> object:
        task = asyncio.create_task(runner.arun("x"))
        await running.wait()
        runner.stop(trace.calls[0].context.flow_id)
        return await task

    started = time.monotonic()
    result = asyncio.run(scenario())
    assert time.monotonic() - started < 5
    assert cancelled.is_set()
    assert result.status is FlowStatus.STOPPED
    assert trace.names() == ["Slow"]
    assert trace.event_types()[-1] == "FlowStopped"
    assert "FlowFinished" not in trace.event_types()


def test_stop_from_another_thread_reaches_a_blocking_executor_through_the_context() -> None:
    seen: list[bool] = []

    def poll(ctx: ExecutionContext) -> str:
        deadline = time.monotonic() + 10
        while not ctx.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append(ctx.cancelled)
        return "saw stop"

    trace = Trace().on_blocking("poll", poll).on("step")
    graph = build(
        {"Start": "Start1", "A": "poll", "B": "poll", "After": "step"},
        [("Start", "A"), ("Start", "B"), ("A", "After")],
    )
    runner = FlowRunner(graph, trace.registry, dispatcher=AsyncDispatcher())
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(runner.run("x")))
    thread.start()
    while len(trace.calls) < 2:
        time.sleep(0.005)
    runner.stop(trace.calls[0].context.flow_id)
    thread.join(10)
    # stop() does not wait for blocking executors: they see the flag and return soon after.
    deadline = time.monotonic() + 5
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == [True, True]
    assert results[0].status is FlowStatus.STOPPED  # type: ignore[attr-defined]
    assert trace.count("After") == 0


def test_stopping_a_paused_flow_records_it_as_stopped() -> None:
    store = InMemoryStore()
    trace = Trace().on("step").on("ask", ask)
    runner = FlowRunner(approval_graph(), trace.registry, store=store, on_event=trace.events.append)
    paused = runner.run("text")
    runner.stop(paused.flow_id)
    assert store.get_flow(paused.flow_id).status is FlowStatus.STOPPED
    assert trace.event_types()[-1] == "FlowStopped"
    with pytest.raises(FlowStateError, match="is stopped"):
        runner.resume(paused.flow_id, "yes")


def _polling(seen: list[bool], started: threading.Event):
    def wait(ctx: ExecutionContext) -> str:
        started.set()
        deadline = time.monotonic() + 5
        while not ctx.cancelled and time.monotonic() < deadline:
            time.sleep(0.005)
        seen.append(ctx.cancelled)
        return "done"

    return wait


def test_cancelling_the_task_that_awaits_a_flow_tells_blocking_executors() -> None:
    seen: list[bool] = []
    started = threading.Event()
    trace = Trace().on_blocking("wait", _polling(seen, started))
    graph = build({"Start": "Start1", "W": "wait"}, [("Start", "W")])
    runner = FlowRunner(graph, trace.registry, dispatcher=AsyncDispatcher())

    async def scenario() -> None:
        task = asyncio.ensure_future(runner.arun("x"))
        await asyncio.to_thread(started.wait, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    began = time.monotonic()
    asyncio.run(scenario())
    while not seen and time.monotonic() - began < 5:
        time.sleep(0.005)
    assert seen == [True]
    assert time.monotonic() - began < 3


def test_a_stop_failure_tells_running_blocking_siblings() -> None:
    seen: list[bool] = []
    started = threading.Event()

    async def fail(ctx: ExecutionContext) -> str:
        await asyncio.to_thread(started.wait, 5)
        raise RuntimeError("bad")

    trace = Trace().on_blocking("wait", _polling(seen, started)).on("fail", fail)
    graph = build(
        {"Start": "Start1", "W": "wait", "Bad": "fail"}, [("Start", "W"), ("Start", "Bad")]
    )
    result = FlowRunner(graph, trace.registry, dispatcher=AsyncDispatcher()).run("x")
    assert result.status is FlowStatus.FAILED
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.005)
    assert seen == [True]
