"""Error strategies: STOP, RETRY (with backoff), SKIP, CONTINUE, and per-attempt timeouts."""

from __future__ import annotations

import asyncio
import time

import pytest
from support import Trace, build, node_id

from quartermaster_engine import (
    AsyncDispatcher,
    ExecutionContext,
    FlowError,
    FlowRunner,
    FlowStatus,
    NodeExecution,
    NodeResult,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
    NodeStatus,
    SyncDispatcher,
)


def raises(message: str):
    def fail(ctx: ExecutionContext) -> NodeResult:
        raise RuntimeError(message)

    return fail


def test_stop_halts_the_flow_cancels_running_branches_and_starts_nothing_new() -> None:
    cancelled: list[str] = []

    async def slow(ctx: ExecutionContext) -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(ctx.current_node.name)
            raise
        return "late"

    async def fail_soon(ctx: ExecutionContext) -> str:
        await asyncio.sleep(0.05)
        raise RuntimeError("bad input")

    trace = Trace().on("slow", slow).on("fail", fail_soon).on("step")
    graph = build(
        {
            "Start": "Start1",
            "Slow": "slow",
            "Bad": "fail",
            "AfterBad": "step",
            "AfterSlow": "step",
            "End": "End1",
        },
        [("Start", "Slow"), ("Start", "Bad"), ("Bad", "AfterBad"), ("Slow", "AfterSlow")],
    )
    runner = FlowRunner(
        graph, trace.registry, dispatcher=AsyncDispatcher(), on_event=trace.events.append
    )
    started = time.monotonic()
    result = runner.run("in")
    assert time.monotonic() - started < 4  # the slow branch did not run to its end
    assert result.status is FlowStatus.FAILED
    assert result.success is False
    assert result.error == f"node 'Bad' ({node_id('Bad')}): RuntimeError: bad input"
    assert sorted(trace.names()) == ["Bad", "Slow"]
    assert cancelled == ["Slow"]
    errors = trace.events_of(FlowError)
    assert [(e.node_name, e.recoverable) for e in errors] == [("Bad", False)]
    assert "FlowFinished" in trace.event_types()
    slow_record = result.node_results[node_id("Slow")]
    assert (slow_record.success, slow_record.error) == (False, "cancelled: flow stopping")


def retry_graph(max_retries: int, retry_delay: float, fn) -> tuple[Trace, object]:
    trace = Trace().on("flaky", fn).on("step")
    graph = build(
        {
            "Start": "Start1",
            "Flaky": {
                "type": "flaky",
                "error_handling": "Retry",
                "max_retries": max_retries,
                "retry_delay": retry_delay,
            },
            "End": "End1",
        },
        [("Start", "Flaky"), ("Flaky", "End")],
    )
    return trace, graph


def test_retry_makes_one_plus_max_retries_attempts_with_doubling_waits_then_fails() -> None:
    trace, graph = retry_graph(3, 0.01, raises("service down"))
    runner = FlowRunner(graph, trace.registry, on_event=trace.events.append)
    result = runner.run("in")
    assert [c.attempt for c in trace.calls] == [1, 2, 3, 4]
    retrying = trace.events_of(NodeRetrying)
    assert [(e.attempt, e.next_attempt, e.delay) for e in retrying] == [
        (1, 2, 0.01),
        (2, 3, 0.02),
        (3, 4, 0.04),
    ]
    assert all(e.error == "RuntimeError: service down" for e in retrying)
    # Each attempt starts no earlier than its scheduled time (event timestamps).
    starts = [e for e in trace.events_of(NodeStarted) if e.node_name == "Flaky"]
    for retry, nxt in zip(retrying, starts[1:], strict=True):
        assert nxt.ts >= retry.ts + retry.delay
    errors = trace.events_of(FlowError)
    assert [(e.node_name, e.error, e.recoverable) for e in errors] == [
        ("Flaky", "RuntimeError: service down", False)
    ]
    assert result.status is FlowStatus.FAILED
    assert result.error == f"node 'Flaky' ({node_id('Flaky')}): RuntimeError: service down"


def test_retry_succeeds_on_a_later_attempt() -> None:
    attempts: list[int] = []

    def flaky(ctx: ExecutionContext) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError(f"attempt {ctx.attempt}")
        return "ok"

    trace, graph = retry_graph(5, 0.0, flaky)
    runner = FlowRunner(graph, trace.registry, on_event=trace.events.append)
    result = runner.run("in")
    assert attempts == [1, 2, 3]
    assert result.status is FlowStatus.COMPLETED
    assert result.final_output == "ok"
    assert len(trace.events_of(NodeRetrying)) == 2
    assert trace.events_of(FlowError) == []
    records = runner.store.load_flow(result.flow_id).records
    flaky_records = [r for r in records if r.node_id == node_id("Flaky")]
    assert [(r.attempt, r.status) for r in flaky_records] == [
        (1, NodeStatus.FAILED),
        (2, NodeStatus.FAILED),
        (3, NodeStatus.FINISHED),
    ]


def test_a_retry_wait_does_not_block_other_branches() -> None:
    trace = Trace().on("flaky", raises("down")).on("step")
    graph = build(
        {
            "Start": "Start1",
            "Flaky": {
                "type": "flaky",
                "error_handling": "Retry",
                "max_retries": 1,
                "retry_delay": 0.2,
            },
            "A": "step",
            "B": "step",
        },
        [("Start", "Flaky"), ("Start", "A"), ("A", "B")],
    )
    runner = FlowRunner(
        graph, trace.registry, dispatcher=SyncDispatcher(), on_event=trace.events.append
    )
    runner.run("in")
    order = [
        (e.type, e.node_name)
        for e in trace.events
        if isinstance(e, NodeStarted | NodeRetrying) and e.node_name != "Start"
    ]
    assert order == [
        ("NodeStarted", "Flaky"),
        ("NodeRetrying", "Flaky"),
        ("NodeStarted", "A"),
        ("NodeStarted", "B"),
        ("NodeStarted", "Flaky"),
    ]


def skip_graph(strategy: str) -> tuple[Trace, object]:
    trace = Trace().on("bad", raises("cannot parse")).on("step")
    graph = build(
        {
            "Start": "Start1",
            "Prep": "step",
            "Bad": {"type": "bad", "error_handling": strategy},
            "After": "step",
            "End": "End1",
        },
        [("Start", "Prep"), ("Prep", "Bad"), ("Bad", "After"), ("After", "End")],
    )
    return trace, graph


def test_skip_passes_the_input_through_and_emits_one_recoverable_error() -> None:
    trace, graph = skip_graph("Skip")
    runner = FlowRunner(graph, trace.registry, on_event=trace.events.append)
    result = runner.run("in")
    assert trace.names() == ["Prep", "Bad", "After"]
    assert [c.input_text for c in trace.calls] == ["in", "Prep(in)", "Prep(in)"]
    assert result.final_output == "After(Prep(in))"
    assert result.status is FlowStatus.COMPLETED
    assert result.success is True
    assert [(e.node_name, e.error) for e in trace.events_of(NodeSkipped)] == [
        ("Bad", "RuntimeError: cannot parse")
    ]
    assert [(e.node_name, e.recoverable) for e in trace.events_of(FlowError)] == [("Bad", True)]
    skipped: NodeExecution = runner.store.get_node_execution(result.flow_id, node_id("Bad"))
    assert (skipped.status, skipped.result) == (NodeStatus.SKIPPED, "Prep(in)")


def test_continue_runs_successors_and_ends_the_flow_unsuccessful() -> None:
    trace, graph = skip_graph("Continue")
    runner = FlowRunner(graph, trace.registry, on_event=trace.events.append)
    result = runner.run("in")
    assert trace.names() == ["Prep", "Bad", "After"]
    assert result.final_output == "After(Prep(in))"
    assert result.status is FlowStatus.FAILED
    assert result.success is False
    assert result.error == f"node 'Bad' ({node_id('Bad')}): RuntimeError: cannot parse"
    assert [(e.node_name, e.recoverable) for e in trace.events_of(FlowError)] == [("Bad", True)]
    assert trace.events_of(NodeSkipped) == []


def test_a_failure_result_is_handled_like_an_exception() -> None:
    trace = Trace().on("bad", lambda ctx: NodeResult(success=False, error="quota exceeded"))
    graph = build(
        {"Start": "Start1", "Bad": "bad", "End": "End1"}, [("Start", "Bad"), ("Bad", "End")]
    )
    result = FlowRunner(graph, trace.registry).run("in")
    assert result.status is FlowStatus.FAILED
    assert result.error == f"node 'Bad' ({node_id('Bad')}): quota exceeded"


@pytest.mark.parametrize("blocking", [False, True], ids=["async-executor", "def-executor"])
def test_timeout_applies_per_attempt_and_says_so(blocking: bool) -> None:
    trace = Trace()
    if blocking:
        trace.on_blocking("slow", lambda ctx: time.sleep(0.5) or "late")
    else:
        trace.on("slow", lambda ctx: asyncio.sleep(0.5))
    graph = build(
        {
            "Start": "Start1",
            "Slow": {
                "type": "slow",
                "timeout": 0.05,
                "error_handling": "Retry",
                "max_retries": 1,
                "retry_delay": 0,
            },
            "End": "End1",
        },
        [("Start", "Slow"), ("Slow", "End")],
    )
    runner = FlowRunner(graph, trace.registry, on_event=trace.events.append)
    result = runner.run("in")
    assert [c.attempt for c in trace.calls] == [1, 2]
    first = trace.events_of(NodeRetrying)[0].error
    assert first == f"node 'Slow' ({node_id('Slow')}) timed out after 0.05 s (attempt 1 of 2)"
    assert (
        result.error == f"node 'Slow' ({node_id('Slow')}) timed out after 0.05 s (attempt 2 of 2)"
    )
    assert result.status is FlowStatus.FAILED


def test_missing_executor_fails_naming_the_type_and_the_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QM_LOAD_PLUGINS", "")  # only the core's own executors
    graph = build(
        {"Start": "Start1", "Classify": "Instruction1", "End": "End1"},
        [("Start", "Classify"), ("Classify", "End")],
    )
    result = FlowRunner(graph).run("in")
    assert result.status is FlowStatus.FAILED
    assert result.error == (
        f"no executor for node type 'Instruction1' (node 'Classify' ({node_id('Classify')})); "
        "`qm plugins` lists the installed ones"
    )
