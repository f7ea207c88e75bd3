"""Shared helpers for the graph tests: a graph's shape as plain, comparable data."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from quartermaster_graph import GraphSpec

Shape = tuple[list[tuple[str, str]], list[tuple[str, str, str]]]


def graph_shape(spec: GraphSpec) -> Shape:
    """``([(name, type)], [(source name, label, target name)])`` in graph order."""
    names = {node.id: node.name for node in spec.nodes}
    nodes = [(node.name, node.type_name) for node in spec.nodes]
    edges = [
        (names.get(e.source_id, "?"), e.label, names.get(e.target_id, "?")) for e in spec.edges
    ]
    return nodes, edges


@pytest.fixture
def shape() -> Callable[[GraphSpec], Shape]:
    """The `graph_shape` function."""
    return graph_shape
