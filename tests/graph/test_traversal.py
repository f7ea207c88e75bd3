"""The 0.1.5 traversal functions, on the graph index."""

from __future__ import annotations

from uuid import uuid4

import pytest

from quartermaster_graph import (
    GraphBuilder,
    GraphCycleError,
    GraphEdge,
    GraphNode,
    GraphSpec,
    find_decision_points,
    find_merge_points,
    get_path,
    get_predecessors,
    get_start_node,
    get_successors,
    topological_sort,
)


def names(nodes: list[GraphNode]) -> list[str]:
    return [node.name for node in nodes]


def diamond() -> GraphSpec:
    return (
        GraphBuilder("Diamond")
        .start()
        .if_node("Check", "x")
        .on("true")
        .static("T")
        .end()
        .on("false")
        .static("F")
        .end()
        .static("Join")
        .end()
        .build()
    )


def node_named(spec: GraphSpec, name: str) -> GraphNode:
    (node,) = [n for n in spec.nodes if n.name == name]
    return node


def test_start_successors_and_predecessors():
    spec = diamond()
    assert get_start_node(spec).name == "Start"
    assert names(get_successors(spec, node_named(spec, "Check").id)) == ["T", "F"]
    assert names(get_predecessors(spec, node_named(spec, "Join").id)) == ["T", "F"]
    assert get_successors(spec, uuid4()) == []


def test_get_start_node_names_a_missing_start():
    spec = diamond()
    missing = uuid4()
    broken = spec.model_copy(update={"start_node_id": missing})
    with pytest.raises(
        ValueError, match=f"^No start node: start_node_id {missing} names no node of the graph$"
    ):
        get_start_node(broken)


def test_get_path_is_a_shortest_path():
    spec = diamond()
    start, end = get_start_node(spec), node_named(spec, "End")
    assert names(get_path(spec, start.id, end.id)) == ["Start", "Check", "T", "Join", "End"]
    assert names(get_path(spec, start.id, start.id)) == ["Start"]
    assert get_path(spec, end.id, start.id) == []
    assert get_path(spec, uuid4(), end.id) == []


def test_topological_sort_keeps_graph_order_among_ties():
    assert names(topological_sort(diamond())) == ["Start", "Check", "T", "F", "Join", "End"]


def test_topological_sort_names_a_cycle():
    spec = (
        GraphBuilder("Loop")
        .start()
        .static("A")
        .static("B")
        .static("C")
        .connect("C", "A")
        .build(validate=False)
    )
    with pytest.raises(GraphCycleError) as caught:
        topological_sort(spec)
    assert names(caught.value.cycle) == ["A", "B", "C"]
    assert str(caught.value) == (
        "graph 'Loop' has a cycle, so it has no topological order: 'A' -> 'B' -> 'C' -> 'A'"
    )


def test_topological_sort_self_loop():
    a = GraphNode(name="A", type="Static1")
    spec = GraphSpec(
        start_node_id=a.id, nodes=[a], edges=[GraphEdge(source_id=a.id, target_id=a.id)]
    )
    with pytest.raises(
        GraphCycleError,
        match=r"^the graph has a cycle, so it has no topological "
        r"order: 'A' -> 'A'$",
    ):
        topological_sort(spec)


def test_decision_and_merge_points():
    spec = diamond()
    assert names(find_decision_points(spec)) == ["Check"]
    assert names(find_merge_points(spec)) == ["Join"]


def test_traversal_of_a_long_chain_is_linear():
    builder = GraphBuilder("Long").start()
    for index in range(20_000):
        builder.static(f"n{index}")
    spec = builder.build(validate=False)
    order = topological_sort(spec)
    assert len(order) == 20_002
    assert order[0].name == "Start"
    assert order[-1].name == "End"
    assert len(get_path(spec, spec.start_node_id, order[-1].id)) == 20_002
