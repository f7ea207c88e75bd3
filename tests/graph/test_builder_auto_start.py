"""Graph() adds its own Start node (quartermaster 0.2+): a chain may open with any
node, and End stays optional. GraphBuilder() still needs start(), as in 0.1.5."""

from __future__ import annotations

import pytest

from quartermaster_graph import Graph, GraphBuilder


def test_a_chain_opening_with_a_node_gets_a_start_and_an_end(shape):
    spec = Graph("Chat").user("Ask").static("Reply").build()
    assert shape(spec) == (
        [("Start", "Start1"), ("Ask", "User1"), ("Reply", "Static1"), ("End", "End1")],
        [("Start", "", "Ask"), ("Ask", "", "Reply"), ("Reply", "", "End")],
    )
    assert spec.start_node_id == spec.nodes[0].id
    assert spec.validate() == []


def test_a_graph_opening_with_a_decision_gets_a_start(shape):
    spec = (
        Graph("Route")
        .if_node("Check", "input")
        .on("true")
        .static("Yes")
        .end()
        .on("false")
        .static("No")
        .end()
        .build()
    )
    assert shape(spec)[1][:3] == [
        ("Start", "", "Check"),
        ("Check", "true", "Yes"),
        ("Check", "false", "No"),
    ]


def test_an_explicit_start_is_still_the_only_start():
    spec = Graph("G").start(timeout=3).static("A").build()
    assert [n.type_name for n in spec.nodes].count("Start1") == 1
    assert spec.nodes[0].timeout == 3
    with pytest.raises(ValueError, match=r"^start\(\) called twice"):
        Graph("G").static("A").start()


def test_graph_builder_needs_start_as_in_0_1_5_unless_asked():
    with pytest.raises(ValueError, match=r"^graph 'G' has no start node: call \.start\(\) first$"):
        GraphBuilder("G").static("X").end().build()
    spec = GraphBuilder("G", auto_start=True).static("X").build()
    assert [n.type_name for n in spec.nodes] == ["Start1", "Static1", "End1"]


def test_an_empty_graph_still_has_no_start():
    with pytest.raises(ValueError, match=r"^No start node in graph 'E'"):
        _ = GraphBuilder("E").start_node_id
    with pytest.raises(ValueError, match=r"has no start node: call \.start\(\) first$"):
        GraphBuilder("E").build()
