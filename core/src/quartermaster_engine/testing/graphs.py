"""Small graph builders for contract tests: nodes by name, stable ids."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from quartermaster_graph import GraphEdge, GraphNode, GraphSpec


def name_id(name: str) -> UUID:
    """The id ``build_graph`` gives the node called ``name``."""
    return uuid5(NAMESPACE_URL, f"qm-contract/{name}")


def build_graph(
    nodes: dict[str, str | dict[str, Any]],
    edges: Sequence[tuple[str, ...]],
    *,
    start: str = "Start",
    name: str = "contract",
) -> GraphSpec:
    """A graph from ``{name: type or {field: value}}`` and ``(source, target[, label])``."""
    built = []
    for node_name, spec in nodes.items():
        fields = {"type": spec} if isinstance(spec, str) else dict(spec)
        built.append(GraphNode(id=name_id(node_name), name=node_name, **fields))
    graph_edges = [
        GraphEdge(
            id=uuid5(NAMESPACE_URL, f"qm-contract-edge/{i}"),
            source_id=name_id(e[0]),
            target_id=name_id(e[1]),
            label=e[2] if len(e) > 2 else "",
        )
        for i, e in enumerate(edges)
    ]
    return GraphSpec(name=name, start_node_id=name_id(start), nodes=built, edges=graph_edges)


def chain_graph(length: int, node_type: str = "echo") -> GraphSpec:
    """Start -> ``length - 2`` nodes of ``node_type`` named n0, n1, ... -> End."""
    names = ["Start", *(f"n{i}" for i in range(length - 2)), "End"]
    nodes: dict[str, str | dict[str, Any]] = {"Start": "Start1"}
    nodes.update({n: node_type for n in names[1:-1]})
    nodes["End"] = "End1"
    return build_graph(nodes, list(itertools.pairwise(names)))


def branching_graph() -> GraphSpec:
    """Every routing shape in one graph: a fan-out into an AwaitAll join (A, B, C ->
    J), a decision D picking ``left`` or ``right`` (the other branch is dead), a join
    M after it, and a check that loops back to J (``again``) or ends (``done``).
    Node types: ``work`` for plain nodes, ``route`` for D, ``again`` for Check."""
    return build_graph(
        {
            "Start": "Start1",
            "A": "work",
            "B": "work",
            "C": "work",
            "J": {"type": "work", "traverse_in": "AwaitAll"},
            "D": {"type": "route", "traverse_out": "SpawnPickedNode"},
            "L": "work",
            "R": "work",
            "M": {"type": "work", "traverse_in": "AwaitAll"},
            "Check": {"type": "again", "traverse_out": "SpawnPickedNode"},
            "End": "End1",
        },
        [
            ("Start", "A"),
            ("Start", "B"),
            ("Start", "C"),
            ("A", "J"),
            ("B", "J"),
            ("C", "J"),
            ("J", "D"),
            ("D", "L", "left"),
            ("D", "R", "right"),
            ("L", "M"),
            ("R", "M"),
            ("M", "Check"),
            ("Check", "J", "again"),
            ("Check", "End", "done"),
        ],
        name="branching",
    )
