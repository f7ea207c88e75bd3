"""Span trees of flows: exact names, parents, attributes and span events, read from
the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
import threading
from uuid import uuid4

from opentelemetry.trace import SpanKind, StatusCode
from otel_support import Spans, attrs, completed_run, events, leaf
from support import build, node_id

from qm_nodes_std import register_graph, std_registry
from qm_sink_otel import SCHEMA_URL, flow_span_id
from quartermaster_engine import (
    AsyncDispatcher,
    Engine,
    ExecutionContext,
    FlowRunner,
    FlowStatus,
    NodeFinished,
    NodeResult,
    NodeStarted,
    SimpleNodeRegistry,
)
from quartermaster_engine.testing import TestClock
from quartermaster_graph import GraphSpec, TraverseIn, TraverseOut


def step(ctx: ExecutionContext) -> NodeResult:
    return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")


def registry(**extra: object) -> SimpleNodeRegistry:
    return SimpleNodeRegistry({"step": step, **extra})


def chain_graph() -> object:
    return build(
        {"Start": "Start1", "A": "step", "B": "step", "End": "End1"},
        [("Start", "A"), ("A", "B"), ("B", "End")],
        name="chain",
    )


def test_a_chain_is_one_trace_whose_id_is_the_flow_id(spans: Spans) -> None:
    result = FlowRunner(chain_graph(), registry(), sinks=[spans.sink]).run("x")
    assert result.final_output == "B(A(x))"

    assert spans.tree() == [
        ("invoke_agent chain", leaf("node Start", "node A", "node B", "node End")),
    ]
    finished = spans.finished()
    assert len(finished) == 5
    assert {s.context.trace_id for s in finished} == {result.flow_id.int}
    flow = spans.one("invoke_agent chain")
    assert flow.parent is None
    assert flow.context.span_id == flow_span_id(result.flow_id)
    assert flow.kind is SpanKind.INTERNAL
    assert flow.instrumentation_scope is not None
    assert flow.instrumentation_scope.schema_url == SCHEMA_URL
    assert flow.resource.attributes["service.name"] == "quartermaster"
    assert attrs(flow) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.conversation.id": str(result.flow_id),
        "gen_ai.agent.name": "chain",
        "qm.flow.id": str(result.flow_id),
        "qm.flow.status": "completed",
    }
    assert flow.status.status_code is StatusCode.UNSET
    assert attrs(spans.one("node A")) == completed_run("A", "step")
    assert spans.sink.tracer.open_flows == 0


def test_a_fan_out_and_join_are_siblings_under_the_flow(spans: Spans) -> None:
    graph = build(
        {
            "Start": "Start1",
            "L": "step",
            "R": "step",
            "Join": {"type": "step", "traverse_in": TraverseIn.AWAIT_ALL},
            "End": "End1",
        },
        [("Start", "L"), ("Start", "R"), ("L", "Join"), ("R", "Join"), ("Join", "End")],
        name="fan",
    )
    runner = FlowRunner(graph, registry(), dispatcher=AsyncDispatcher(), sinks=[spans.sink])
    result = runner.run("x")
    assert result.status is FlowStatus.COMPLETED

    [(root, children)] = spans.tree()
    assert root == "invoke_agent fan"
    names = [name for name, _ in children]
    assert sorted(names) == ["node End", "node Join", "node L", "node R", "node Start"]
    assert names[0] == "node Start"
    assert names[-2:] == ["node Join", "node End"]
    assert all(grandchildren == [] for _, grandchildren in children)
    join = spans.one("node Join")
    assert join.start_time is not None
    for branch in ("node L", "node R"):
        end_time = spans.one(branch).end_time
        assert end_time is not None
        assert end_time <= join.start_time


def test_a_retry_is_a_span_per_attempt_with_a_retry_event(spans: Spans) -> None:
    calls: list[int] = []

    def flaky(ctx: ExecutionContext) -> NodeResult:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RuntimeError("first try fails")
        return NodeResult(output_text="ok")

    graph = build(
        {
            "Start": "Start1",
            "Flaky": {
                "type": "flaky",
                "error_handling": "Retry",
                "max_retries": 2,
                "retry_delay": 0,
            },
            "End": "End1",
        },
        [("Start", "Flaky"), ("Flaky", "End")],
        name="retry",
    )
    result = FlowRunner(graph, registry(flaky=flaky), sinks=[spans.sink]).run("x")
    assert result.status is FlowStatus.COMPLETED
    assert calls == [1, 2]

    assert spans.tree() == [
        ("invoke_agent retry", leaf("node Start", "node Flaky", "node Flaky", "node End")),
    ]
    first, second = sorted(spans.named("node Flaky"), key=lambda s: s.start_time or 0)
    assert attrs(first)["qm.node.attempt"] == 1
    assert attrs(first)["qm.node.status"] == "failed"
    assert attrs(first)["qm.node.error_strategy"] == "retry"
    assert first.status.status_code is StatusCode.ERROR
    assert first.status.description is not None
    assert "first try fails" in first.status.description
    [(name, retry)] = events(first)
    assert name == "qm.node.retry"
    assert (retry["attempt"], retry["next_attempt"], retry["delay"]) == (1, 2, 0.0)
    assert "first try fails" in retry["error"]
    assert (attrs(second)["qm.node.attempt"], attrs(second)["qm.node.status"]) == (2, "completed")
    assert "qm.node.error_strategy" not in attrs(second)
    assert second.status.status_code is StatusCode.UNSET


def _failing(strategy: str) -> object:
    return build(
        {
            "Start": "Start1",
            "Bad": {"type": "bad", "error_handling": strategy},
            "After": "step",
            "End": "End1",
        },
        [("Start", "Bad"), ("Bad", "After"), ("After", "End")],
        name=strategy.lower(),
    )


def _bad(ctx: ExecutionContext) -> NodeResult:
    raise RuntimeError("broken")


def test_skip_continue_and_stop_are_named_on_the_failed_run(spans: Spans) -> None:
    outcomes = {}
    for strategy in ("Skip", "Continue", "Stop"):
        result = FlowRunner(_failing(strategy), registry(bad=_bad), sinks=[spans.sink]).run("x")
        outcomes[strategy] = result.status
    assert outcomes == {
        "Skip": FlowStatus.COMPLETED,
        "Continue": FlowStatus.FAILED,
        "Stop": FlowStatus.FAILED,
    }
    bad = {
        attrs(s)["qm.node.error_strategy"]: s
        for s in spans.named("node Bad")
        if s.status.status_code is StatusCode.ERROR
    }
    assert sorted(bad) == ["continue", "skip", "stop"]
    assert attrs(bad["skip"])["qm.node.status"] == "skipped"
    assert attrs(bad["continue"])["qm.node.status"] == "failed"
    assert attrs(bad["stop"])["qm.node.status"] == "failed"
    for span in bad.values():
        assert span.status.description is not None
        assert "broken" in span.status.description
    # The stopped flow ran nothing after Bad; its flow span failed with the error.
    [stop_flow] = spans.named("invoke_agent stop")
    assert stop_flow.status.status_code is StatusCode.ERROR
    assert attrs(stop_flow)["qm.flow.status"] == "failed"
    assert attrs(stop_flow)["error.type"] == "FlowFailed"
    assert len(spans.named("node After")) == 2  # skip and continue went on


def ask(ctx: ExecutionContext) -> NodeResult:
    if ctx.user_input is None:
        return NodeResult(wait_for_user=True, user_prompt="Approve?", user_options=["yes", "no"])
    return NodeResult(output_text=ctx.user_input)


def approval_graph() -> object:
    return build(
        {"Start": "Start1", "Approve": "ask", "Publish": "step", "End": "End1"},
        [("Start", "Approve"), ("Approve", "Publish"), ("Publish", "End")],
        name="approval",
    )


def test_a_pause_ends_the_flow_span_and_the_resume_continues_under_it(spans: Spans) -> None:
    runner = FlowRunner(approval_graph(), registry(ask=ask), sinks=[spans.sink])
    paused = runner.run("draft")
    assert paused.status is FlowStatus.PAUSED
    assert spans.tree() == [("invoke_agent approval", leaf("node Start", "node Approve"))]
    assert spans.sink.tracer.open_flows == 0

    done = runner.resume(paused.flow_id, "yes")
    assert done.final_output == "Publish(yes)"
    assert spans.tree() == [
        (
            "invoke_agent approval",
            [
                ("node Start", []),
                ("node Approve", []),
                ("invoke_agent approval", leaf("node Approve", "node Publish", "node End")),
            ],
        )
    ]
    first, second = sorted(spans.named("invoke_agent approval"), key=lambda s: s.start_time or 0)
    assert {s.context.trace_id for s in spans.finished()} == {paused.flow_id.int}
    assert attrs(first)["qm.flow.status"] == "paused"
    assert events(first) == [("qm.flow.paused", {"waiting": [str(node_id("Approve"))]})]
    assert attrs(second)["qm.flow.status"] == "completed"
    assert attrs(second)["qm.flow.resumed"] is True
    assert events(second) == [
        ("qm.flow.resumed", {"reason": "resume", "qm.node.id": str(node_id("Approve"))})
    ]
    waiting, answered = sorted(spans.named("node Approve"), key=lambda s: s.start_time or 0)
    assert attrs(waiting)["qm.node.status"] == "waiting"
    # The prompt is content: only its options are recorded by default.
    assert events(waiting) == [("qm.node.user_input_required", {"options": ["yes", "no"]})]
    assert attrs(answered)["qm.node.status"] == "completed"


def test_a_child_flow_is_a_child_span_of_its_sub_assistant_node(spans: Spans) -> None:
    register_graph(
        "otel-triage",
        build(
            {"Start": "Start1", "Inner": "step", "End": "End1"},
            [("Start", "Inner"), ("Inner", "End")],
            name="triage",
        ),
    )
    parent = build(
        {
            "Start": "Start1",
            "Sub": {"type": "SubAssistant1", "metadata": {"graph": "otel-triage"}},
            "End": "End1",
        },
        [("Start", "Sub"), ("Sub", "End")],
        name="parent",
    )
    reg = std_registry()
    reg.register("step", step)
    result = FlowRunner(parent, reg, sinks=[spans.sink]).run("x")
    assert result.final_output == "Inner(x)"

    assert spans.tree() == [
        (
            "invoke_agent parent",
            [
                ("node Start", []),
                (
                    "node Sub",
                    [("invoke_agent triage", leaf("node Start", "node Inner", "node End"))],
                ),
                ("node End", []),
            ],
        )
    ]
    child = spans.one("invoke_agent triage")
    assert child.context.trace_id == result.flow_id.int
    assert attrs(child)["qm.flow.parent_id"] == str(result.flow_id)
    # One conversation: the root flow's.
    assert attrs(child)["gen_ai.conversation.id"] == str(result.flow_id)
    child_id = result.node_results[node_id("Sub")].data["child_flow_id"]
    assert attrs(child)["qm.flow.id"] == child_id


def test_record_content_puts_input_output_and_prompts_on_spans() -> None:
    spans = Spans(record_content=True)
    try:
        runner = FlowRunner(approval_graph(), registry(ask=ask), sinks=[spans.sink])
        paused = runner.run("draft")
        runner.resume(paused.flow_id, "yes")
        first, second = sorted(
            spans.named("invoke_agent approval"), key=lambda s: s.start_time or 0
        )
        assert attrs(first)["gen_ai.input.messages"] == (
            '[{"role": "user", "parts": [{"type": "text", "content": "draft"}]}]'
        )
        assert attrs(second)["gen_ai.output.messages"] == (
            '[{"role": "assistant", "parts": [{"type": "text", "content": "Publish(yes)"}]}]'
        )
        waiting = min(spans.named("node Approve"), key=lambda s: s.start_time or 0)
        assert events(waiting) == [
            ("qm.node.user_input_required", {"options": ["yes", "no"], "prompt": "Approve?"})
        ]
    finally:
        spans.sink.close()


def test_sampling_zero_records_nothing_and_the_flow_is_unchanged() -> None:
    spans = Spans(sampling=0.0)
    try:
        result = FlowRunner(chain_graph(), registry(), sinks=[spans.sink]).run("x")
        assert result.final_output == "B(A(x))"
        assert spans.finished() == []
        assert spans.sink.tracer.open_flows == 0
    finally:
        spans.sink.close()


def test_node_runs_of_a_flow_started_elsewhere_land_under_its_flow_span(spans: Spans) -> None:
    # A worker process that runs some of a flow's nodes sees their events only.
    flow_id = uuid4()
    a = node_id("A")
    started = NodeStarted(flow_id=flow_id, node_id=a, node_name="A", node_type="step", ts=1.0)
    spans.sink.emit(started)
    spans.sink.emit(NodeFinished(flow_id=flow_id, node_id=a, node_name="A", ts=2.0))
    [span] = spans.finished()
    assert span.name == "node A"
    assert span.context.trace_id == flow_id.int
    assert span.parent is not None
    assert (span.parent.span_id, span.parent.is_remote) == (flow_span_id(flow_id), True)
    assert (span.start_time, span.end_time) == (1_000_000_000, 2_000_000_000)
    assert spans.sink.tracer.open_flows == 0


def test_stopping_a_paused_flow_closes_its_trace_with_a_stopped_segment(spans: Spans) -> None:
    runner = FlowRunner(approval_graph(), registry(ask=ask), sinks=[spans.sink])
    paused = runner.run("draft")
    runner.stop(paused.flow_id)
    [flow] = spans.named("invoke_agent approval")
    assert attrs(flow)["qm.flow.status"] == "paused"
    # FlowStopped does not name the graph: the stopped segment is "invoke_agent".
    [stopped] = spans.named("invoke_agent")
    assert attrs(stopped)["qm.flow.status"] == "stopped"
    assert events(stopped) == [("qm.flow.stopped", {"reason": "stop() called"})]
    assert stopped.parent is not None
    assert stopped.parent.span_id == flow_span_id(paused.flow_id)
    assert spans.sink.tracer.open_flows == 0


def test_a_branch_not_taken_is_a_dead_node_span(spans: Spans) -> None:
    graph = build(
        {
            "Start": "Start1",
            "Pick": {"type": "pick", "traverse_out": TraverseOut.SPAWN_PICKED},
            "Yes": "step",
            "No": "step",
            "After no": "step",
            "End": "End1",
        },
        [
            ("Start", "Pick"),
            ("Pick", "Yes", "yes"),
            ("Pick", "No", "no"),
            ("No", "After no"),
            ("Yes", "End"),
            ("After no", "End"),
        ],
        name="branch",
    )

    def pick(ctx: ExecutionContext) -> NodeResult:
        return NodeResult(output_text="y", picked_node="Yes")

    result = FlowRunner(graph, registry(pick=pick), sinks=[spans.sink]).run("x")
    assert result.final_output == "Yes(y)"
    assert result.status is FlowStatus.COMPLETED

    [(_, children)] = spans.tree()
    assert sorted(name for name, _ in children) == [
        "node After no",
        "node End",
        "node No",
        "node Pick",
        "node Start",
        "node Yes",
    ]
    dead = {s.name: s for s in spans.finished() if attrs(s).get("qm.node.status") == "dead"}
    assert sorted(dead) == ["node After no", "node No"]
    assert attrs(dead["node No"]) == {
        "qm.node.id": str(node_id("No")),
        "qm.node.name": "No",
        "qm.node.status": "dead",
    }
    assert dead["node No"].start_time == dead["node No"].end_time


def test_runners_in_several_threads_share_one_sink(spans: Spans) -> None:
    results: list[FlowStatus] = []

    def run_flows() -> None:
        runner = FlowRunner(chain_graph(), registry(), sinks=[spans.sink])
        results.extend(runner.run(f"x{i}").status for i in range(10))

    threads = [threading.Thread(target=run_flows) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [FlowStatus.COMPLETED] * 40

    finished = spans.finished()
    assert len(finished) == 40 * 5
    by_trace: dict[int, list[str]] = {}
    for span in finished:
        by_trace.setdefault(span.context.trace_id, []).append(span.name)
    assert len(by_trace) == 40
    for names in by_trace.values():
        assert sorted(names) == ["invoke_agent chain", "node A", "node B", "node End", "node Start"]
    flows = {s.context.span_id: s for s in finished if s.parent is None}
    for span in finished:
        if span.parent is not None:
            assert flows[span.parent.span_id].context.trace_id == span.context.trace_id
    assert spans.sink.tracer.open_flows == 0


def test_a_sleep_ends_its_run_sleeping_and_the_wake_is_a_run_of_its_own(spans: Spans) -> None:
    from quartermaster_engine.testing import TestClock
    from quartermaster_graph import GraphBuilder

    clock = TestClock()
    graph = GraphBuilder("nap").start().sleep("Nap", "24h").end().build()
    result = FlowRunner(graph, registry(), sinks=[spans.sink], clock=clock).run("x")
    assert result.status is FlowStatus.COMPLETED

    asleep, awake = sorted(spans.named("node Nap"), key=lambda s: s.start_time or 0)
    wake_at = TestClock().now() + 86400
    assert attrs(asleep)["qm.node.status"] == "sleeping"
    assert events(asleep) == [
        ("qm.node.timer_set", {"wake_at": wake_at, "wake_iso": "2030-01-02T00:00:00+00:00"})
    ]
    assert attrs(awake)["qm.node.status"] == "completed"
    assert events(awake) == [("qm.node.timer_fired", {"wake_at": wake_at, "late": 0.0})]
    first, second = sorted(spans.named("invoke_agent nap"), key=lambda s: s.start_time or 0)
    assert (attrs(first)["qm.flow.status"], attrs(second)["qm.flow.status"]) == (
        "paused",
        "completed",
    )
    assert spans.sink.tracer.open_flows == 0


def test_a_map_run_ends_mapping_and_its_join_is_a_run_of_its_own(spans: Spans) -> None:
    from quartermaster_graph import Graph

    graph = Graph("map").map("M", items="input.split()", node="step", max_concurrency=2).end()
    result = FlowRunner(graph.build(), registry(), sinks=[spans.sink]).run("a b c")
    assert result.status is FlowStatus.COMPLETED

    mapping, joined = sorted(spans.named("node M"), key=lambda s: s.start_time or 0)
    assert attrs(mapping)["qm.node.status"] == "mapping"
    assert events(mapping) == [("qm.node.map_started", {"total": 3, "running": 2})]
    assert attrs(joined)["qm.node.status"] == "completed"
    items = spans.named("node M item")
    assert sorted(attrs(s)["qm.node.visit"] for s in items) == [1, 2, 3]
    assert {attrs(s)["qm.node.status"] for s in items} == {"completed"}
    assert spans.sink.tracer.open_flows == 0


def test_a_scheduled_flow_carries_a_schedule_fired_span_event(spans: Spans) -> None:
    clock = TestClock(skip=False)

    async def main() -> None:
        async with Engine(registry=registry(), clock=clock, sinks=[spans.sink]) as engine:
            graph = chain_graph()
            assert isinstance(graph, GraphSpec)
            await engine.schedules.add("hourly", graph, "0 * * * *", input="x")
            clock.advance("1h")
            (flow_id,) = await engine.schedules.fire_due()
            assert (await engine.result(flow_id, wait=True)).final_output == "B(A(x))"

    asyncio.run(main())
    flow = spans.one("invoke_agent chain")
    tick = TestClock().now() + 3600
    assert events(flow) == [
        (
            "qm.flow.schedule_fired",
            {
                "schedule": "hourly",
                "tick": tick,
                "tick_iso": "2030-01-01T01:00:00+00:00",
                "missed": 0,
            },
        )
    ]


def test_a_deadline_that_takes_its_edge_names_the_edge(spans: Spans) -> None:
    from quartermaster_graph import GraphBuilder, Take

    clock = TestClock(skip=False)
    graph = (
        GraphBuilder("approve")
        .start()
        .user("Ask", ["ok?"], timeout="1h", on_timeout=Take("late"))
        .on("late")
        .static("Chase", "chased")
        .end()
        .static("Ship", "shipped")
        .end()
        .build()
    )

    async def main() -> None:
        async with Engine(clock=clock, sinks=[spans.sink]) as engine:
            paused = await engine.run(graph, "x")
            clock.advance("1h")
            assert await engine.wake_due() == [paused.flow_id]

    asyncio.run(main())
    passed = [s for s in spans.named("node Ask") if attrs(s)["qm.node.status"] == "deadline_passed"]
    assert [events(s) for s in passed] == [
        [("qm.node.deadline_passed", {"deadline": TestClock().now() + 3600, "edge": "late"})]
    ]
