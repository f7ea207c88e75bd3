"""Chains, fan-out/fan-in joins, AwaitFirst, decisions and dead paths."""

from __future__ import annotations

import pytest
from support import Trace, build, chain, node_id

from quartermaster_engine import (
    AsyncDispatcher,
    FlowError,
    FlowFinished,
    FlowRunner,
    FlowStatus,
    NodeFinished,
    NodeResult,
    NodeStarted,
    SyncDispatcher,
)
from quartermaster_graph import GraphValidationError

DISPATCHERS = [pytest.param(SyncDispatcher, id="sync"), pytest.param(AsyncDispatcher, id="async")]


def test_a_100000_node_chain_completes_without_recursion() -> None:
    trace = Trace().on("step", lambda ctx: "x")
    result = FlowRunner(chain(100_000), trace.registry).run("go")
    assert result.status is FlowStatus.COMPLETED
    assert result.success is True
    assert len(trace.calls) == 99_998
    assert result.final_output == "x"
    assert len(result.node_results) == 100_000


def test_chain_passes_each_output_to_the_next_node() -> None:
    trace = Trace().on("step")
    result = FlowRunner(chain(5), trace.registry).run("in")
    assert trace.names() == ["n0", "n1", "n2"]
    assert [c.input_text for c in trace.calls] == ["in", "n0(in)", "n1(n0(in))"]
    assert result.final_output == "n2(n1(n0(in)))"


def test_events_of_a_chain_are_exact_and_numbered() -> None:
    trace = Trace().on("step")
    runner = FlowRunner(chain(3), trace.registry, on_event=trace.events.append)
    result = runner.run("in")
    assert trace.event_types() == [
        "FlowStarted",
        "NodeStarted",
        "NodeFinished",
        "NodeStarted",
        "NodeFinished",
        "NodeStarted",
        "NodeFinished",
        "FlowFinished",
    ]
    assert [e.seq for e in trace.events] == list(range(1, 9))
    assert {e.flow_id for e in trace.events} == {result.flow_id}
    assert [e.node_name for e in trace.events_of(NodeStarted)] == ["Start", "n0", "End"]
    finished = trace.events_of(FlowFinished)[0]
    assert (finished.final_output, finished.status, finished.success) == (
        "n0(in)",
        "completed",
        True,
    )


def diamond(join_in: str = "AwaitAll") -> object:
    return build(
        {
            "Start": "Start1",
            "A": "step",
            "B": "step",
            "J": {"type": "step", "traverse_in": join_in},
            "End": "End1",
        },
        [("Start", "A"), ("Start", "B"), ("A", "J"), ("B", "J"), ("J", "End")],
    )


@pytest.mark.parametrize("dispatcher", DISPATCHERS)
def test_diamond_join_runs_once_with_both_outputs(dispatcher: type) -> None:
    trace = Trace().on("step")
    result = FlowRunner(diamond(), trace.registry, dispatcher=dispatcher()).run("in")
    assert sorted(trace.names()) == ["A", "B", "J"]
    assert trace.count("J") == 1
    join = next(c for c in trace.calls if c.node == "J")
    assert join.input_text == "A(in)\nB(in)"  # edge order, whatever finished first
    assert join.context.predecessor_outputs == {"A": "A(in)", "B": "B(in)"}
    assert result.final_output == "J(A(in)\nB(in))"


@pytest.mark.parametrize("dispatcher", DISPATCHERS)
def test_wide_fan_out_fan_in_joins_once_with_every_branch(dispatcher: type) -> None:
    width = 1000
    nodes: dict[str, object] = {"Start": "Start1", "J": {"type": "join", "traverse_in": "AwaitAll"}}
    nodes.update({f"b{i}": "step" for i in range(width)})
    nodes["End"] = "End1"
    edges = [("Start", f"b{i}") for i in range(width)] + [(f"b{i}", "J") for i in range(width)]
    edges.append(("J", "End"))
    trace = Trace().on("step", lambda ctx: ctx.current_node.name)
    trace.on("join", lambda ctx: str(len(ctx.predecessor_outputs)))
    result = FlowRunner(build(nodes, edges), trace.registry, dispatcher=dispatcher()).run("in")
    assert trace.count("J") == 1
    assert len(trace.calls) == width + 1
    join = next(c for c in trace.calls if c.node == "J")
    assert join.input_text.split("\n") == [f"b{i}" for i in range(width)]
    assert result.final_output == str(width)


@pytest.mark.parametrize("dispatcher", DISPATCHERS)
def test_await_first_fires_once_on_the_first_delivery(dispatcher: type) -> None:
    trace = Trace().on("step")
    result = FlowRunner(diamond("AwaitFirst"), trace.registry, dispatcher=dispatcher()).run("in")
    assert trace.count("J") == 1
    assert trace.count("A") == trace.count("B") == 1
    assert result.final_output == "J(A(in))"


def decision_graph(answer: str | None) -> tuple[Trace, object]:
    trace = Trace().on("step")
    trace.on("route", lambda ctx: NodeResult(output_text="routed", picked_node=answer))
    graph = build(
        {
            "Start": "Start1",
            "Route": {"type": "route", "traverse_out": "SpawnPickedNode"},
            "Billing": "step",
            "Tech": "step",
            "End": "End1",
        },
        [
            ("Start", "Route"),
            ("Route", "Billing", "billing"),
            ("Route", "Tech", "technical"),
            ("Billing", "End"),
            ("Tech", "End"),
        ],
    )
    return trace, graph


@pytest.mark.parametrize(
    ("answer", "ran"),
    [
        ("billing", "Billing"),  # edge label
        ("Tech", "Tech"),  # target name
        (str(node_id("Billing")), "Billing"),  # target id
    ],
)
def test_decision_runs_only_the_picked_branch(answer: str, ran: str) -> None:
    trace, graph = decision_graph(answer)
    result = FlowRunner(graph, trace.registry).run("in")
    assert trace.names() == ["Route", ran]
    assert result.final_output == f"{ran}(routed)"
    assert result.status is FlowStatus.COMPLETED


def test_label_wins_over_a_target_named_like_another_label() -> None:
    trace = Trace().on("step")
    trace.on("route", lambda ctx: NodeResult(output_text="r", picked_node="x"))
    graph = build(
        {
            "Start": "Start1",
            "Route": {"type": "route", "traverse_out": "SpawnPickedNode"},
            "x": "step",
            "Other": "step",
        },
        [("Start", "Route"), ("Route", "x", "y"), ("Route", "Other", "x")],
    )
    FlowRunner(graph, trace.registry).run("in")
    assert trace.names() == ["Route", "Other"]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            "french",
            "node 'Route' ({id}) picked 'french', which matches no branch; "
            "valid choices: 'billing', 'technical'",
        ),
        (None, "node 'Route' ({id}) picked no branch; valid choices: 'billing', 'technical'"),
        ("", "node 'Route' ({id}) picked no branch; valid choices: 'billing', 'technical'"),
    ],
)
def test_unknown_or_empty_pick_fails_the_node_and_lists_the_choices(
    answer: str | None, message: str
) -> None:
    trace, graph = decision_graph(answer)
    runner = FlowRunner(graph, trace.registry, on_event=trace.events.append)
    result = runner.run("in")
    expected = message.format(id=node_id("Route"))
    assert trace.names() == ["Route"]
    assert result.status is FlowStatus.FAILED
    assert result.error == expected
    errors = trace.events_of(FlowError)
    assert [(e.node_name, e.error, e.recoverable) for e in errors] == [("Route", expected, False)]


def unlabeled_decision_graph(answer: str | None, node_type: str = "route") -> tuple[Trace, object]:
    """0.1.5's decision: unlabeled edges, the executor answers with a target's name."""
    trace = Trace().on("step")
    trace.on(node_type, lambda ctx: NodeResult(output_text="routed", picked_node=answer))
    graph = build(
        {
            "Start": "Start1",
            "Route": {"type": node_type, "traverse_out": "SpawnPickedNode"},
            "A": "step",
            "B": "step",
            "End": "End1",
        },
        [("Start", "Route"), ("Route", "A"), ("Route", "B"), ("A", "End"), ("B", "End")],
    )
    return trace, graph


@pytest.mark.parametrize("node_type", ["route", "Decision1"])
@pytest.mark.parametrize("answer", ["A", "B"])
def test_a_decision_with_unlabeled_edges_picks_by_target_name(node_type: str, answer: str) -> None:
    trace, graph = unlabeled_decision_graph(answer, node_type)
    result = FlowRunner(graph, trace.registry).run("in")
    assert trace.names() == ["Route", answer]
    assert (result.status, result.final_output) == (FlowStatus.COMPLETED, f"{answer}(routed)")


@pytest.mark.parametrize("answer", [" A", "A\n", "\tA  "])
def test_a_pick_with_surrounding_whitespace_matches_as_in_0_1_5(answer: str) -> None:
    trace, graph = unlabeled_decision_graph(answer)
    result = FlowRunner(graph, trace.registry).run("in")
    assert trace.names() == ["Route", "A"]
    assert result.status is FlowStatus.COMPLETED


def test_a_pick_matching_no_unlabeled_edge_fails_listing_the_target_names() -> None:
    trace, graph = unlabeled_decision_graph("C")
    result = FlowRunner(graph, trace.registry).run("in")
    assert trace.names() == ["Route"]
    assert result.status is FlowStatus.FAILED
    assert result.error == (
        f"node 'Route' ({node_id('Route')}) picked 'C', which matches no branch; "
        "valid choices: 'A', 'B'"
    )


def test_a_decision_between_targets_of_one_name_is_refused_before_anything_runs() -> None:
    trace = Trace().on("step").on("route", lambda ctx: NodeResult(picked_node="A"))
    graph = build(
        {
            "Start": "Start1",
            "Route": {"type": "route", "traverse_out": "SpawnPickedNode"},
            "A": "step",
            "A2": "step",
        },
        [("Start", "Route"), ("Route", "A"), ("Route", "A2")],
    )
    graph.nodes[-1].name = "A"
    with pytest.raises(GraphValidationError) as caught:
        FlowRunner(graph, trace.registry)
    assert [i.code for i in caught.value.errors] == ["picked-edge-ambiguous"]
    assert trace.calls == []


@pytest.mark.parametrize("answer", ["true", "false"])
def test_a_user_if1_executor_is_held_only_to_structural_rules(answer: str) -> None:
    # 0.1.5's tests: an If1 run by the user's own executor, edges labelled by target.
    trace = Trace().on("step")
    target = "Counter" if answer == "true" else "End"
    trace.on("If1", lambda ctx: NodeResult(output_text="checked", picked_node=target))
    graph = build(
        {
            "Start": "Start1",
            "Check": {"type": "If1", "traverse_out": "SpawnPickedNode"},
            "Counter": "step",
            "End": "End1",
        },
        [("Start", "Check"), ("Check", "Counter", "Counter"), ("Check", "End", "End")],
    )
    result = FlowRunner(graph, trace.registry).run("in")
    assert trace.names() == (["Check", "Counter"] if answer == "true" else ["Check"])
    assert result.status is FlowStatus.COMPLETED


@pytest.mark.parametrize("dispatcher", DISPATCHERS)
def test_join_after_a_decision_fires_with_the_branch_that_ran(dispatcher: type) -> None:
    trace = Trace().on("step")
    trace.on("route", lambda ctx: NodeResult(output_text="r", picked_node="left"))
    graph = build(
        {
            "Start": "Start1",
            "D": {"type": "route", "traverse_out": "SpawnPickedNode"},
            "L": "step",
            "R": "step",
            "R2": "step",
            "J": {"type": "step", "traverse_in": "AwaitAll"},
            "End": "End1",
        },
        [
            ("Start", "D"),
            ("D", "L", "left"),
            ("D", "R", "right"),
            ("R", "R2"),
            ("L", "J"),
            ("R2", "J"),
            ("J", "End"),
        ],
    )
    result = FlowRunner(graph, trace.registry, dispatcher=dispatcher()).run("in")
    assert trace.names() == ["D", "L", "J"]
    assert result.final_output == "J(L(r))"
    assert result.status is FlowStatus.COMPLETED


def test_a_join_whose_inputs_are_all_dead_is_dead_too() -> None:
    trace = Trace().on("step")
    trace.on("route", lambda ctx: NodeResult(output_text="r", picked_node="skip"))
    graph = build(
        {
            "Start": "Start1",
            "D": {"type": "route", "traverse_out": "SpawnPickedNode"},
            "Fork": "step",
            "A": "step",
            "B": "step",
            "J": {"type": "step", "traverse_in": "AwaitAll"},
            "After": "step",
            "Other": "step",
            "End": {"type": "End1", "traverse_in": "AwaitAll"},
        },
        [
            ("Start", "D"),
            ("D", "Fork", "work"),
            ("D", "Other", "skip"),
            ("Fork", "A"),
            ("Fork", "B"),
            ("A", "J"),
            ("B", "J"),
            ("J", "After"),
            ("After", "End"),
            ("Other", "End"),
        ],
    )
    result = FlowRunner(graph, trace.registry).run("in")
    assert trace.names() == ["D", "Other"]
    assert result.final_output == "Other(r)"
    assert result.status is FlowStatus.COMPLETED


def test_spawn_none_ends_the_branch_and_its_join_does_not_wait() -> None:
    trace = Trace().on("step")
    graph = build(
        {
            "Start": "Start1",
            "A": "step",
            "Stop": {"type": "step", "traverse_out": "SpawnNone"},
            "Never": "step",
            "J": {"type": "step", "traverse_in": "AwaitAll"},
            "End": "End1",
        },
        [
            ("Start", "A"),
            ("Start", "Stop"),
            ("Stop", "Never"),
            ("A", "J"),
            ("Never", "J"),
            ("J", "End"),
        ],
    )
    result = FlowRunner(graph, trace.registry).run("in")
    assert trace.names() == ["A", "Stop", "J"]
    assert result.final_output == "J(A(in))"


def test_node_finished_events_carry_output_and_data() -> None:
    trace = Trace().on("step", lambda ctx: NodeResult(output_text="out", data={"k": 1}))
    runner = FlowRunner(chain(3), trace.registry, on_event=trace.events.append)
    runner.run("in")
    finished = [e for e in trace.events_of(NodeFinished) if e.node_name == "n0"]
    assert [(e.result, e.output_data) for e in finished] == [("out", {"k": 1})]
