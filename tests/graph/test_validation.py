"""validate_graph / check_graph: every rule, positive and negative, with exact messages."""

from __future__ import annotations

import itertools
import re
from typing import Any
from uuid import UUID, uuid4

import pytest

from quartermaster_graph import (
    GraphEdge,
    GraphNode,
    GraphSpec,
    GraphValidationError,
    TraverseOut,
    ValidationError,
    ValidationIssue,
    check_graph,
    validate_graph,
)
from quartermaster_graph.validation import ISSUE_CODES


def node(name: str, type: str = "Static1", **fields: Any) -> GraphNode:
    return GraphNode(name=name, type=type, **fields)


def edge(source: GraphNode, target: GraphNode, label: str = "", **fields: Any) -> GraphEdge:
    return GraphEdge(source_id=source.id, target_id=target.id, label=label, **fields)


def graph(nodes: list[GraphNode], edges: list[GraphEdge], start: UUID | None = None) -> GraphSpec:
    return GraphSpec(name="G", start_node_id=start or nodes[0].id, nodes=nodes, edges=edges)


def codes(spec: GraphSpec) -> list[str]:
    return [issue.code for issue in validate_graph(spec)]


def picking(name: str, type: str = "Decision1") -> GraphNode:
    return node(name, type, traverse_out=TraverseOut.SPAWN_PICKED)


START = node("Start", "Start1")
END = node("End", "End1")


def chain(*middle: GraphNode) -> tuple[list[GraphNode], list[GraphEdge]]:
    nodes = [START, *middle, END]
    return nodes, [edge(a, b) for a, b in itertools.pairwise(nodes)]


def test_a_valid_graph_has_no_issues():
    assert validate_graph(graph(*chain(node("A")))) == []
    assert check_graph(graph(*chain(node("A")))) == []


def test_cycles_are_allowed():
    a, b = node("A"), node("B")
    spec = graph([START, a, b], [edge(START, a), edge(a, b), edge(b, a)])
    assert validate_graph(spec) == []


# -- the start node ---------------------------------------------------------------


def test_start_node_missing():
    missing = uuid4()
    spec = graph(*chain(node("A")), start=missing)
    assert validate_graph(spec) == [
        ValidationIssue(
            "invalid_start_id", f"start_node_id {missing} names no node of the graph", "error"
        )
    ]


def test_start_node_of_another_type():
    a = node("A")
    spec = graph([START, a], [edge(START, a)], start=a.id)
    issues = validate_graph(spec)
    assert issues[0] == ValidationIssue(
        "start_id_not_start_type",
        f"the start node 'A' ({a.id}) has type Static1, not Start1",
        "error",
        a.id,
    )
    # Start1 itself is unreachable from the designated start: a warning.
    assert [i.code for i in issues] == ["start_id_not_start_type", "orphan_node"]


def test_multiple_start_nodes():
    second = node("Start 2", "Start1")
    nodes, edges = chain(node("A"))
    spec = graph([*nodes, second], [*edges, edge(second, END)])
    issues = validate_graph(spec)
    assert issues[0] == ValidationIssue(
        "multiple_starts",
        f"'Start 2' ({second.id}) is a second Start1 node; the graph starts at "
        f"'Start' ({START.id}) and may have only one",
        "error",
        second.id,
    )
    assert [i.code for i in issues] == ["multiple_starts", "orphan_node"]


# -- duplicates ---------------------------------------------------------------------


def test_duplicate_node_ids():
    a = node("A")
    twin = node("Twin", id=a.id)
    spec = graph([START, a, twin, END], [edge(START, a), edge(a, END)])
    assert validate_graph(spec) == [
        ValidationIssue(
            "duplicate-node-id",
            f"'Twin' ({a.id}) has the same id as 'A' ({a.id})",
            "error",
            a.id,
        )
    ]


def test_duplicate_edge_ids():
    a = node("A")
    first = edge(START, a)
    again = edge(a, END, id=first.id)
    spec = graph([START, a, END], [first, again])
    assert validate_graph(spec) == [
        ValidationIssue(
            "duplicate-edge-id",
            f"edge 'A' -> 'End' (id {first.id}) has the same id as "
            f"edge 'Start' -> 'A' (id {first.id})",
            "error",
            edge_id=first.id,
        )
    ]


def test_duplicate_node_names_are_a_warning():
    a, a2 = node("A"), node("A")
    spec = graph([START, a, a2, END], [edge(START, a), edge(a, a2), edge(a2, END)])
    assert validate_graph(spec) == [
        ValidationIssue(
            "duplicate-node-name",
            f"'A' ({a2.id}) has the same name as 'A' ({a.id})",
            "warning",
            a2.id,
        )
    ]


# -- edges to missing nodes ------------------------------------------------------------


def test_edge_target_missing():
    ghost = uuid4()
    nodes, edges = chain(node("A"))
    dangling = GraphEdge(source_id=START.id, target_id=ghost)
    spec = graph(nodes, [*edges, dangling])
    assert validate_graph(spec) == [
        ValidationIssue(
            "invalid_edge_target",
            f"edge 'Start' -> ? (id {dangling.id}) targets missing node {ghost}",
            "error",
            edge_id=dangling.id,
        )
    ]
    assert str(validate_graph(spec)[0]) == (
        f"error [invalid_edge_target] edge 'Start' -> ? (id {dangling.id}) "
        f"targets missing node {ghost}"
    )


def test_edge_source_missing():
    ghost = uuid4()
    nodes, edges = chain(node("A"))
    dangling = GraphEdge(source_id=ghost, target_id=END.id, label="x")
    spec = graph(nodes, [*edges, dangling])
    assert validate_graph(spec) == [
        ValidationIssue(
            "invalid_edge_source",
            f"edge ? -[x]-> 'End' (id {dangling.id}) starts at missing node {ghost}",
            "error",
            edge_id=dangling.id,
        )
    ]


def test_unnamed_nodes_are_named_by_type_in_edge_messages():
    unnamed = GraphNode(type="acme.Thing")
    ghost = uuid4()
    dangling = GraphEdge(source_id=unnamed.id, target_id=ghost)
    spec = graph([START, unnamed], [edge(START, unnamed), dangling])
    assert validate_graph(spec)[0].message == (
        f"edge acme.Thing -> ? (id {dangling.id}) targets missing node {ghost}"
    )


# -- nodes that pick their successor -----------------------------------------------


def test_picking_node_with_unlabeled_edges_to_distinct_names_is_fine():
    # 0.1.5's graphs: the executor answers with the target's name.
    d, a, b = picking("Route"), node("A"), node("B")
    spec = graph([START, d, a, b], [edge(START, d), edge(d, a), edge(d, b, "b")])
    assert validate_graph(spec) == []


def test_picking_node_with_unlabeled_edges_to_unnamed_targets_is_fine():
    d, a, b = picking("Route"), GraphNode(type="Static1"), GraphNode(type="Static1")
    spec = graph([START, d, a, b], [edge(START, d), edge(d, a), edge(d, b)])
    assert validate_graph(spec) == []


def test_unlabeled_edges_to_targets_of_one_name_are_ambiguous_once():
    d, a, again, c = picking("Route"), node("A"), node("A"), node("C")
    first, second = edge(d, a), edge(d, again)
    spec = graph([START, d, a, again, c], [edge(START, d), first, second, edge(d, c)])
    assert validate_graph(spec) == [
        ValidationIssue(
            "picked-edge-ambiguous",
            f"edge 'Route' -> 'A' (id {second.id}) has no label, so 'Route' ({d.id}) would "
            f"pick it by its target's name 'A', but that is also the name of the target of "
            f"edge 'Route' -> 'A' (id {first.id}); label the edges",
            "error",
            d.id,
            second.id,
        ),
        ValidationIssue(
            "duplicate-node-name",
            f"'A' ({again.id}) has the same name as 'A' ({a.id})",
            "warning",
            again.id,
        ),
    ]


def test_an_unlabeled_edge_whose_target_name_is_another_edges_label_is_ambiguous():
    d, a, b = picking("Route"), node("A"), node("B")
    unlabeled, labelled = edge(d, b), edge(d, a, "B")
    spec = graph([START, d, a, b], [edge(START, d), unlabeled, labelled])
    assert validate_graph(spec) == [
        ValidationIssue(
            "picked-edge-ambiguous",
            f"edge 'Route' -> 'B' (id {unlabeled.id}) has no label, so 'Route' ({d.id}) would "
            f"pick it by its target's name 'B', but that is the label of "
            f"edge 'Route' -[B]-> 'A' (id {labelled.id}); label the edges",
            "error",
            d.id,
            unlabeled.id,
        )
    ]


def test_two_unlabeled_edges_to_one_unnamed_target_are_ambiguous():
    d, t = picking("Route"), GraphNode(type="Static1")
    first, second = edge(d, t), edge(d, t)
    spec = graph([START, d, t], [edge(START, d), first, second])
    assert codes(spec) == ["picked-edge-ambiguous"]
    assert validate_graph(spec)[0].message == (
        f"edge 'Route' -> Static1 (id {second.id}) has no label, so 'Route' ({d.id}) would "
        f"pick it by its target's id '{t.id}', but that is also the id of the target of "
        f"edge 'Route' -> Static1 (id {first.id}); label the edges"
    )


def test_labels_tell_apart_targets_of_one_name():
    d, a, again = picking("Route"), node("A"), node("A")
    spec = graph([START, d, a, again], [edge(START, d), edge(d, a, "x"), edge(d, again, "y")])
    assert codes(spec) == ["duplicate-node-name"]


def test_picking_node_with_duplicate_labels():
    d, a, b = picking("Route"), node("A"), node("B")
    first, again = edge(d, a, "x"), edge(d, b, "x")
    spec = graph([START, d, a, b], [edge(START, d), first, again])
    assert validate_graph(spec) == [
        ValidationIssue(
            "picked-edge-duplicate-label",
            f"edge 'Route' -[x]-> 'B' (id {again.id}) has the same label 'x' as "
            f"edge 'Route' -[x]-> 'A' (id {first.id}); labels of 'Route' ({d.id}) must be distinct",
            "error",
            d.id,
            again.id,
        )
    ]


@pytest.mark.parametrize("count", [0, 1])
def test_picking_node_with_fewer_than_two_edges_is_a_warning(count):
    d, a = picking("Route"), node("A")
    edges = [edge(START, d), *[edge(d, a, "only")][:count]]
    spec = graph([START, d, a][: 2 + count], edges)
    assert validate_graph(spec) == [
        ValidationIssue(
            "picked-too-few-edges",
            f"'Route' ({d.id}) picks one of its successors but has {count} outgoing "
            f"edge{'' if count == 1 else 's'}",
            "warning",
            d.id,
        )
    ]


def test_picking_node_with_two_distinct_labels_is_fine():
    d, a, b = picking("Route"), node("A"), node("B")
    spec = graph([START, d, a, b], [edge(START, d), edge(d, a, "a"), edge(d, b, "b")])
    assert validate_graph(spec) == []


def test_branching_type_that_spawns_all_is_a_warning():
    d, a, b = node("Route", "Decision1"), node("A"), node("B")
    spec = graph([START, d, a, b], [edge(START, d), edge(d, a, "a"), edge(d, b, "b")])
    assert validate_graph(spec) == [
        ValidationIssue(
            "branching-node-spawns-all",
            f"'Route' ({d.id}) is a Decision1 node but its traverse_out is SpawnAll, so every "
            "outgoing branch runs; use SpawnPickedNode to run only the picked one",
            "warning",
            d.id,
        )
    ]


# -- node types' own edge rules belong to their executors -----------------------------------


@pytest.mark.parametrize(
    ("node_type", "labels"),
    [("If1", ("Counter", "End")), ("If1", ()), ("Switch1", ("a", "stray"))],
)
def test_core_checks_if_and_switch_only_structurally(node_type, labels):
    # Their edge rules depend on the executor that runs them (the standard pack's
    # If1 and Switch1 check theirs before a flow starts).
    check = picking("Check", node_type)
    targets = [node(label) for label in labels]
    spec = graph([START, check, *targets], [edge(START, check), *(edge(check, t) for t in targets)])
    assert [i.code for i in validate_graph(spec) if i.is_error] == []


# -- reachability ------------------------------------------------------------------------


def test_unreachable_node_is_a_warning():
    lost = node("Lost")
    nodes, edges = chain(node("A"))
    spec = graph([*nodes, lost], [*edges, edge(lost, END)])
    assert validate_graph(spec) == [
        ValidationIssue(
            "orphan_node",
            f"'Lost' ({lost.id}) is not reachable from the start node 'Start' ({START.id})",
            "warning",
            lost.id,
        )
    ]


def test_comments_and_memory_definitions_need_no_edges():
    extras = [node("Note", "Comment1"), node("Mem", "FlowMemory1"), node("UMem", "UserMemory1")]
    nodes, edges = chain(node("A"))
    assert validate_graph(graph([*nodes, *extras], edges)) == []


def test_reachability_through_a_loop_is_linear_and_complete():
    nodes = [START] + [node(f"N{i}") for i in range(50_000)]
    edges = [edge(a, b) for a, b in itertools.pairwise(nodes)] + [edge(nodes[-1], nodes[1])]
    assert validate_graph(graph(nodes, edges)) == []


# -- errors at once, ordering, the exception --------------------------------------------


def test_errors_come_before_warnings_and_all_are_reported():
    lost = node("Lost")
    ghost = uuid4()
    check, a = picking("Check"), node("A")
    dangling = GraphEdge(source_id=check.id, target_id=ghost)
    spec = graph(
        [START, check, lost, a],
        [edge(START, check), dangling, edge(check, a, "A"), edge(check, a)],
    )
    assert codes(spec) == [
        "invalid_edge_target",
        "picked-edge-ambiguous",
        "orphan_node",
    ]


def test_check_graph_raises_with_every_error_and_returns_warnings():
    lost = node("Lost")
    nodes, edges = chain(node("A"))
    assert [i.code for i in check_graph(graph([*nodes, lost], edges))] == ["orphan_node"]

    ghost = uuid4()
    bad = [
        GraphEdge(source_id=START.id, target_id=ghost),
        GraphEdge(source_id=ghost, target_id=END.id),
    ]
    spec = graph([*nodes, lost], [*edges, *bad])
    with pytest.raises(GraphValidationError) as caught:
        check_graph(spec)
    error = caught.value
    assert isinstance(error, ValueError)
    assert [i.code for i in error.errors] == ["invalid_edge_target", "invalid_edge_source"]
    assert [i.code for i in error.warnings] == ["orphan_node"]
    assert error.issues == error.errors + error.warnings
    assert str(error) == "\n".join(
        [
            "graph 'G' has 2 errors:",
            f"  error [invalid_edge_target] edge 'Start' -> ? (id {bad[0].id}) "
            f"targets missing node {ghost}",
            f"  error [invalid_edge_source] edge ? -> 'End' (id {bad[1].id}) "
            f"starts at missing node {ghost}",
        ]
    )


def test_graph_spec_validate_raises_the_same_error():
    spec = graph(*chain(node("A")), start=uuid4())
    with pytest.raises(
        GraphValidationError, match=r"^graph 'G' has 1 error:\n  error \[invalid_start_id\]"
    ):
        spec.validate()


def test_validation_leaves_the_spec_untouched():
    spec = graph(*chain(node("A")))
    copy = spec.model_copy(deep=True)
    validate_graph(spec)
    assert spec == copy


def test_validation_error_is_the_0_1_5_name_of_the_issue_class():
    assert ValidationError is ValidationIssue


def test_codes_are_0_1_5_snake_case_where_0_1_5_had_the_problem_else_kebab_case():
    snake = {c for c in ISSUE_CODES if "_" in c}
    assert snake == {
        "no_start",
        "invalid_start_id",
        "start_id_not_start_type",
        "multiple_starts",
        "invalid_edge_source",
        "invalid_edge_target",
        "orphan_node",
    }
    assert all(re.fullmatch(r"[a-z]+(-[a-z]+)+", c) for c in set(ISSUE_CODES) - snake)
