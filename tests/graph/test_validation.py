"""validate_graph / check_graph: every rule, positive and negative, with exact messages."""

from __future__ import annotations

import itertools
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
            "start-node-missing", f"start_node_id {missing} names no node of the graph", "error"
        )
    ]


def test_start_node_of_another_type():
    a = node("A")
    spec = graph([START, a], [edge(START, a)], start=a.id)
    issues = validate_graph(spec)
    assert issues[0] == ValidationIssue(
        "start-node-not-start",
        f"the start node 'A' ({a.id}) has type Static1, not Start1",
        "error",
        a.id,
    )
    # Start1 itself is unreachable from the designated start: a warning.
    assert [i.code for i in issues] == ["start-node-not-start", "node-unreachable"]


def test_multiple_start_nodes():
    second = node("Start 2", "Start1")
    nodes, edges = chain(node("A"))
    spec = graph([*nodes, second], [*edges, edge(second, END)])
    issues = validate_graph(spec)
    assert issues[0] == ValidationIssue(
        "multiple-start-nodes",
        f"'Start 2' ({second.id}) is a second Start1 node; the graph starts at "
        f"'Start' ({START.id}) and may have only one",
        "error",
        second.id,
    )
    assert [i.code for i in issues] == ["multiple-start-nodes", "node-unreachable"]


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
            "edge-target-missing",
            f"edge 'Start' -> ? (id {dangling.id}) targets missing node {ghost}",
            "error",
            edge_id=dangling.id,
        )
    ]
    assert str(validate_graph(spec)[0]) == (
        f"error [edge-target-missing] edge 'Start' -> ? (id {dangling.id}) "
        f"targets missing node {ghost}"
    )


def test_edge_source_missing():
    ghost = uuid4()
    nodes, edges = chain(node("A"))
    dangling = GraphEdge(source_id=ghost, target_id=END.id, label="x")
    spec = graph(nodes, [*edges, dangling])
    assert validate_graph(spec) == [
        ValidationIssue(
            "edge-source-missing",
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


def test_picking_node_with_an_unlabeled_edge():
    d, a, b = picking("Route"), node("A"), node("B")
    unlabeled = edge(d, b)
    spec = graph([START, d, a, b], [edge(START, d), edge(d, a, "a"), unlabeled])
    assert validate_graph(spec) == [
        ValidationIssue(
            "picked-edge-unlabeled",
            f"edge 'Route' -> 'B' (id {unlabeled.id}) has no label; 'Route' ({d.id}) picks its "
            "successor by edge label, so every outgoing edge needs one",
            "error",
            d.id,
            unlabeled.id,
        )
    ]


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


# -- If ---------------------------------------------------------------------------------------


def if_graph(*labels: str) -> tuple[GraphSpec, GraphNode, list[GraphEdge]]:
    check = picking("Check", "If1")
    targets = [node(f"T{i}") for i in range(len(labels))]
    out = [edge(check, t, label) for t, label in zip(targets, labels)]
    return graph([START, check, *targets], [edge(START, check), *out]), check, out


def test_if_with_true_and_false_is_fine():
    assert validate_graph(if_graph("true", "false")[0]) == []


def test_if_with_a_label_other_than_true_or_false():
    spec, check, out = if_graph("true", "yes")
    assert validate_graph(spec) == [
        ValidationIssue(
            "if-edge-label-invalid",
            f"edge 'Check' -[yes]-> 'T1' (id {out[1].id}) of If node 'Check' ({check.id}) is "
            "labelled 'yes'; If edges are labelled 'true' or 'false'",
            "error",
            check.id,
            out[1].id,
        ),
        ValidationIssue(
            "if-branch-missing",
            f"If node 'Check' ({check.id}) has no outgoing edge labelled 'false'",
            "error",
            check.id,
        ),
    ]


def test_if_with_a_duplicate_and_an_unlabeled_edge():
    spec, _check, _out = if_graph("true", "true", "false", "")
    assert codes(spec) == ["picked-edge-duplicate-label", "picked-edge-unlabeled"]


def test_if_with_no_edges_misses_both_branches():
    spec, check, _ = if_graph()
    assert codes(spec) == ["if-branch-missing", "if-branch-missing"]
    assert [i.message for i in validate_graph(spec)] == [
        f"If node 'Check' ({check.id}) has no outgoing edge labelled 'true'",
        f"If node 'Check' ({check.id}) has no outgoing edge labelled 'false'",
    ]


def test_if_rules_apply_even_when_it_spawns_all():
    check, t = node("Check", "If1"), node("T")
    spec = graph([START, check, t], [edge(START, check), edge(check, t)])
    assert codes(spec) == [
        "picked-edge-unlabeled",
        "if-branch-missing",
        "if-branch-missing",
        "branching-node-spawns-all",
    ]


# -- Switch -------------------------------------------------------------------------------


def switch_graph(
    metadata: dict[str, Any], *labels: str
) -> tuple[GraphSpec, GraphNode, list[GraphEdge]]:
    switch = node("Pick", "Switch1", traverse_out=TraverseOut.SPAWN_PICKED, metadata=metadata)
    targets = [node(f"T{i}") for i in range(len(labels))]
    out = [edge(switch, t, label) for t, label in zip(targets, labels)]
    return graph([START, switch, *targets], [edge(START, switch), *out]), switch, out


CASES = {
    "cases": [{"label": "a", "expression": "x == 1"}, {"label": "b", "expression": "x == 2"}],
    "default": "other",
}


def test_switch_with_an_edge_per_case_and_default_is_fine():
    assert validate_graph(switch_graph(CASES, "a", "b", "other")[0]) == []


@pytest.mark.parametrize(
    ("metadata", "got"),
    [({}, ""), ({"cases": []}, ""), ({"cases": "a"}, " (got str)")],
)
def test_switch_without_cases(metadata, got):
    spec, switch, _ = switch_graph(metadata, "a", "b")
    assert validate_graph(spec) == [
        ValidationIssue(
            "switch-no-cases",
            f"Switch node 'Pick' ({switch.id}) has no cases: metadata 'cases' must be a "
            f"non-empty list of {{label, expression}} mappings{got}",
            "error",
            switch.id,
        )
    ]


def test_switch_case_without_label_or_expression():
    metadata = {
        "cases": [
            {"label": "a", "expression": ""},
            {"expression": "x", "edge_id": "b"},
            "c",
            {"label": "d", "expression": "y"},
        ]
    }
    spec, switch, _ = switch_graph(metadata, "d")
    assert [(i.code, i.message) for i in validate_graph(spec)] == [
        (
            "switch-case-invalid",
            f"Switch node 'Pick' ({switch.id}): case 0 ({{'label': 'a', 'expression': ''}}) "
            "needs a non-empty 'label' and 'expression'",
        ),
        (
            "switch-case-invalid",
            f"Switch node 'Pick' ({switch.id}): case 1 ({{'expression': 'x', 'edge_id': 'b'}}) "
            "needs a non-empty 'label' and 'expression' (0.1.5's 'edge_id' is read as the label "
            "by GraphBuilder.switch(); graph files name it 'label')",
        ),
        (
            "switch-case-invalid",
            f"Switch node 'Pick' ({switch.id}): case 2 ('c') needs a non-empty 'label' and "
            "'expression'",
        ),
        (
            "picked-too-few-edges",
            f"'Pick' ({switch.id}) picks one of its successors but has 1 outgoing edge",
        ),
    ]


def test_switch_case_or_default_without_an_edge():
    spec, switch, out = switch_graph(CASES, "a", "stray")
    assert validate_graph(spec) == [
        ValidationIssue(
            "switch-branch-missing",
            f"Switch node 'Pick' ({switch.id}): case 'b' has no outgoing edge labelled 'b'",
            "error",
            switch.id,
        ),
        ValidationIssue(
            "switch-branch-missing",
            f"Switch node 'Pick' ({switch.id}): default 'other' has no outgoing edge "
            "labelled 'other'",
            "error",
            switch.id,
        ),
        ValidationIssue(
            "switch-edge-unused",
            f"edge 'Pick' -[stray]-> 'T1' (id {out[1].id}) of Switch node 'Pick' ({switch.id}) "
            "matches no case and is not the default, so it is never taken",
            "warning",
            switch.id,
            out[1].id,
        ),
    ]


# -- reachability ------------------------------------------------------------------------


def test_unreachable_node_is_a_warning():
    lost = node("Lost")
    nodes, edges = chain(node("A"))
    spec = graph([*nodes, lost], [*edges, edge(lost, END)])
    assert validate_graph(spec) == [
        ValidationIssue(
            "node-unreachable",
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
    check = picking("Check", "If1")
    dangling = GraphEdge(source_id=check.id, target_id=ghost)
    spec = graph([START, check, lost], [edge(START, check), dangling])
    assert codes(spec) == [
        "edge-target-missing",
        "picked-edge-unlabeled",
        "if-branch-missing",
        "if-branch-missing",
        "node-unreachable",
    ]


def test_check_graph_raises_with_every_error_and_returns_warnings():
    lost = node("Lost")
    nodes, edges = chain(node("A"))
    assert [i.code for i in check_graph(graph([*nodes, lost], edges))] == ["node-unreachable"]

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
    assert [i.code for i in error.errors] == ["edge-target-missing", "edge-source-missing"]
    assert [i.code for i in error.warnings] == ["node-unreachable"]
    assert error.issues == error.errors + error.warnings
    assert str(error) == "\n".join(
        [
            "graph 'G' has 2 errors:",
            f"  error [edge-target-missing] edge 'Start' -> ? (id {bad[0].id}) "
            f"targets missing node {ghost}",
            f"  error [edge-source-missing] edge ? -> 'End' (id {bad[1].id}) "
            f"starts at missing node {ghost}",
        ]
    )


def test_graph_spec_validate_raises_the_same_error():
    spec = graph(*chain(node("A")), start=uuid4())
    with pytest.raises(
        GraphValidationError, match=r"^graph 'G' has 1 error:\n  error \[start-node"
    ):
        spec.validate()


def test_validation_leaves_the_spec_untouched():
    spec = graph(*chain(node("A")))
    copy = spec.model_copy(deep=True)
    validate_graph(spec)
    assert spec == copy


def test_validation_error_is_the_0_1_5_name_of_the_issue_class():
    assert ValidationError is ValidationIssue


def test_every_code_is_kebab_case():
    assert all(code == code.lower() and " " not in code and "_" not in code for code in ISSUE_CODES)
