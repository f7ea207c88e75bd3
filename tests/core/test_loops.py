"""Loops: back edges start new visits, join state is per visit, visit limits fail clearly."""

from __future__ import annotations

import pytest
from support import Trace, build, node_id

from quartermaster_engine import (
    AsyncDispatcher,
    ExecutionContext,
    FlowError,
    FlowRunner,
    FlowStatus,
    NodeResult,
    SyncDispatcher,
)

DISPATCHERS = [pytest.param(SyncDispatcher, id="sync"), pytest.param(AsyncDispatcher, id="async")]


def increment(ctx: ExecutionContext) -> NodeResult:
    n = ctx.memory.get("n", 0) + 1
    return NodeResult(output_text=str(n), data={"memory_updates": {"n": n}})


def until(limit: int):
    def check(ctx: ExecutionContext) -> NodeResult:
        again = int(ctx.input_text) < limit
        return NodeResult(output_text=ctx.input_text, picked_node="again" if again else "done")

    return check


def counter_graph(body_join: bool = False) -> object:
    """Start -> Inc -> (A, B) -> J -> Check -again-> Inc ; Check -done-> End."""
    return build(
        {
            "Start": "Start1",
            "Inc": "inc",
            "A": "step",
            "B": "step",
            "J": {"type": "join", "traverse_in": "AwaitAll"},
            "Check": {"type": "check", "traverse_out": "SpawnPickedNode"},
            "End": "End1",
        },
        [
            ("Start", "Inc"),
            ("Inc", "A"),
            ("Inc", "B"),
            ("A", "J"),
            ("B", "J"),
            ("J", "Check"),
            ("Check", "Inc", "again"),
            ("Check", "End", "done"),
        ],
    )


@pytest.mark.parametrize("dispatcher", DISPATCHERS)
def test_counter_loop_runs_the_body_exactly_n_times(dispatcher: type) -> None:
    trace = Trace().on("inc", increment).on("step").on("check", until(4))
    trace.on("join", lambda ctx: ctx.memory["n"])
    result = FlowRunner(counter_graph(), trace.registry, dispatcher=dispatcher()).run("go")
    assert trace.count("Inc") == 4
    assert trace.count("A") == trace.count("B") == 4
    # The join fires once per visit, with that visit's outputs.
    joins = [c for c in trace.calls if c.node == "J"]
    assert [c.visit for c in joins] == [1, 2, 3, 4]
    assert [c.input_text for c in joins] == [f"A({n})\nB({n})" for n in "1234"]
    assert [c.visit for c in trace.calls if c.node == "Inc"] == [1, 2, 3, 4]
    assert result.final_output == "4"
    assert result.status is FlowStatus.COMPLETED


def test_exceeding_the_visit_limit_fails_the_flow_naming_node_and_limit() -> None:
    trace = Trace().on("inc", increment).on("step").on("check", until(1000))
    trace.on("join", lambda ctx: ctx.memory["n"])
    runner = FlowRunner(counter_graph(), trace.registry, max_visits=5, on_event=trace.events.append)
    result = runner.run("go")
    message = f"node 'Inc' ({node_id('Inc')}) exceeded its visit limit of 5"
    assert result.status is FlowStatus.FAILED
    assert result.error == message
    assert trace.count("Inc") == 5
    assert trace.count("Check") == 5
    assert [(e.node_name, e.error) for e in trace.events_of(FlowError)] == [("Inc", message)]


def test_a_node_can_raise_its_own_visit_limit() -> None:
    trace = Trace().on("inc", increment).on("check", until(7))
    graph = build(
        {
            "Start": "Start1",
            "Inc": {"type": "inc", "metadata": {"max_visits": 7}},
            "Check": {
                "type": "check",
                "traverse_out": "SpawnPickedNode",
                "metadata": {"max_visits": 7},
            },
            "End": "End1",
        },
        [("Start", "Inc"), ("Inc", "Check"), ("Check", "Inc", "again"), ("Check", "End", "done")],
    )
    result = FlowRunner(graph, trace.registry, max_visits=3).run("go")
    assert result.status is FlowStatus.COMPLETED
    assert trace.count("Inc") == 7
    assert result.final_output == "7"


@pytest.mark.parametrize("dispatcher", DISPATCHERS)
def test_loop_exit_feeding_a_join_waits_for_the_loop_to_end(dispatcher: type) -> None:
    """The exit edge is 'not taken' on every lap but the last; the join must not fire early."""
    trace = Trace().on("inc", increment).on("check", until(3)).on("step")
    graph = build(
        {
            "Start": "Start1",
            "Inc": "inc",
            "Check": {"type": "check", "traverse_out": "SpawnPickedNode"},
            "Side": "step",
            "J": {"type": "step", "traverse_in": "AwaitAll"},
            "End": "End1",
        },
        [
            ("Start", "Inc"),
            ("Start", "Side"),
            ("Inc", "Check"),
            ("Check", "Inc", "again"),
            ("Check", "J", "done"),
            ("Side", "J"),
            ("J", "End"),
        ],
    )
    result = FlowRunner(graph, trace.registry, dispatcher=dispatcher()).run("go")
    assert trace.count("J") == 1
    assert trace.count("Inc") == 3
    assert result.final_output == "J(3\nSide(go))"
    assert result.status is FlowStatus.COMPLETED


def test_loop_with_an_unused_exit_into_a_join_is_resolved_when_the_loop_ends() -> None:
    """A loop with two exits: the one never taken is dead once the loop is over."""
    trace = Trace().on("inc", increment).on("step")

    def route(ctx: ExecutionContext) -> NodeResult:
        return NodeResult(
            output_text=ctx.input_text, picked_node="again" if ctx.memory["n"] < 3 else "out"
        )

    trace.on("route", route)
    graph = build(
        {
            "Start": "Start1",
            "Inc": "inc",
            "Check": {"type": "route", "traverse_out": "SpawnPickedNode"},
            "Never": "step",
            "Out": "step",
            "J": {"type": "step", "traverse_in": "AwaitAll"},
            "End": "End1",
        },
        [
            ("Start", "Inc"),
            ("Inc", "Check"),
            ("Check", "Inc", "again"),
            ("Check", "Out", "out"),
            ("Check", "Never", "never"),
            ("Out", "J"),
            ("Never", "J"),
            ("J", "End"),
        ],
    )
    result = FlowRunner(graph, trace.registry).run("go")
    assert trace.names() == ["Inc", "Check", "Inc", "Check", "Inc", "Check", "Out", "J"]
    assert result.final_output == "J(Out(3))"


def test_spawn_start_loops_back_to_the_start_node_with_a_new_visit() -> None:
    trace = Trace().on("inc", increment)

    def again(ctx: ExecutionContext) -> NodeResult:
        return NodeResult(output_text=f"lap {ctx.memory['n']}")

    trace.on("again", again)
    graph = build(
        {
            "Start": "Start1",
            "Inc": "inc",
            "Gate": {"type": "check", "traverse_out": "SpawnPickedNode"},
            "Again": {"type": "again", "traverse_out": "SpawnStart"},
            "End": "End1",
        },
        [("Start", "Inc"), ("Inc", "Gate"), ("Gate", "Again", "again"), ("Gate", "End", "done")],
    )
    trace.on("check", until(3))
    result = FlowRunner(graph, trace.registry).run("go")
    assert trace.names() == ["Inc", "Gate", "Again", "Inc", "Gate", "Again", "Inc", "Gate"]
    starts = [r for r in result.node_results if r == node_id("Start")]
    assert starts == [node_id("Start")]
    assert result.final_output == "3"
    # The start node passes on what reached it: the flow input first, then the lap text.
    assert [c.input_text for c in trace.calls if c.node == "Inc"] == ["go", "lap 1", "lap 2"]
