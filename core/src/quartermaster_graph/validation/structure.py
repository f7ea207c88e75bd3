"""The structural checks: the start node, nodes (duplicate ids and names, capture
names), edges (ids, ends), Map1 nodes and reachability from the start."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from quartermaster_graph.enums import NodeType
from quartermaster_graph.models import CAPTURE_AS, GraphEdge, GraphNode, GraphSpec
from quartermaster_graph.validation.graph_index import GraphIndex
from quartermaster_graph.validation.issues import ValidationIssue, error, warning

#: Node types that are not meant to be reached through edges (notes, memory definitions).
_DETACHED_TYPES: frozenset[str] = frozenset(
    t.value for t in (NodeType.COMMENT, NodeType.FLOW_MEMORY, NodeType.USER_MEMORY)
)
_START = NodeType.START.value
_END = NodeType.END.value
_MAP = NodeType.MAP.value


def check_start(ix: GraphIndex) -> Iterator[ValidationIssue]:
    """The graph has a Start1 node, and start_node_id names it."""
    if not any(node.type_name == _START for node in ix.spec.nodes):
        yield error("no_start", "the graph has no Start1 node")
    start_id = ix.spec.start_node_id
    if ix.start is None:
        yield error("invalid_start_id", f"start_node_id {start_id} names no node of the graph")
    elif ix.start.type_name != _START:
        yield error(
            "start_id_not_start_type",
            f"the start node {ix.start.describe()} has type {ix.start.type_name}, not Start1",
            start_id,
        )


def check_nodes(ix: GraphIndex) -> Iterator[ValidationIssue]:
    """One Start1 node; distinct node ids, capture names and (but End nodes) names."""
    starts = [n for n in ix.spec.nodes if n.type_name == _START]
    # The designated start node is the one to keep; every other Start1 is extra.
    start_ok = ix.start is not None and ix.start.type_name == _START
    kept = ix.start if start_ok else next(iter(starts), None)
    for node in starts:
        if kept is not None and node is not kept:
            yield error(
                "multiple_starts",
                f"{node.describe()} is a second Start1 node; the graph starts at "
                f"{kept.describe()} and may have only one",
                node.id,
            )
    named: dict[str, GraphNode] = {}
    captured: dict[str, GraphNode] = {}
    for node in ix.spec.nodes:
        yield from _check_capture(node, captured)
        first = ix.nodes[node.id]
        if first is not node:
            yield error(
                "duplicate-node-id",
                f"{node.describe()} has the same id as {first.describe()}",
                node.id,
            )
        # End nodes may share a name: the builder gives each branch its own "End".
        if node.name and node.type_name != _END:
            earlier = named.setdefault(node.name, node)
            if earlier is not node:
                yield warning(
                    "duplicate-node-name",
                    f"{node.describe()} has the same name as {earlier.describe()}",
                    node.id,
                )


def _check_capture(node: GraphNode, captured: dict[str, GraphNode]) -> Iterator[ValidationIssue]:
    if CAPTURE_AS not in node.metadata:
        return
    name = node.metadata[CAPTURE_AS]
    if not isinstance(name, str) or not name:
        yield error(
            "capture-name-invalid",
            f"{node.describe()} has capture_as {name!r}; it must be a non-empty string",
            node.id,
        )
        return
    earlier = captured.setdefault(name, node)
    if earlier is not node:
        yield error(
            "duplicate-capture-name",
            f"{node.describe()} is captured as '{name}', as {earlier.describe()} is; "
            "capture names must be distinct",
            node.id,
        )


def check_edges(ix: GraphIndex) -> Iterator[ValidationIssue]:
    """Distinct edge ids; every edge starts and ends at a node of the graph."""
    seen: dict[UUID, GraphEdge] = {}
    for edge in ix.spec.edges:
        first = seen.setdefault(edge.id, edge)
        if first is not edge:
            yield error(
                "duplicate-edge-id",
                f"{ix.describe_edge(edge)} has the same id as {ix.describe_edge(first)}",
                edge=edge.id,
            )
        if edge.source_id not in ix.nodes:
            yield error(
                "invalid_edge_source",
                f"{ix.describe_edge(edge)} starts at missing node {edge.source_id}",
                edge=edge.id,
            )
        if edge.target_id not in ix.nodes:
            yield error(
                "invalid_edge_target",
                f"{ix.describe_edge(edge)} targets missing node {edge.target_id}",
                edge=edge.id,
            )


def check_maps(ix: GraphIndex) -> Iterator[ValidationIssue]:
    """Each Map1 names one node that only it runs: no edges, not a control node."""
    mapped: dict[UUID, GraphNode] = {}
    touched = {e.source_id for e in ix.spec.edges} | {e.target_id for e in ix.spec.edges}
    for node in ix.spec.nodes:
        if node.type_name != _MAP:
            continue
        ref = node.metadata.get("node")
        item = map_item_node(ix.spec, ref)
        problem = None
        if item is None:
            problem = f"names no node of the graph as its 'node' ({ref!r})"
        elif item.type_name in (_START, _END, _MAP, "Back1"):
            problem = f"cannot map {item.describe()}: it is a {item.type_name} node"
        elif item.id in touched:
            problem = f"maps {item.describe()}, which has edges; a mapped node has none"
        elif mapped.setdefault(item.id, node) is not node:
            problem = f"maps {item.describe()}, which {mapped[item.id].describe()} maps too"
        if problem is not None:
            yield error("map-node-invalid", f"{node.describe()} {problem}", node.id)


def check_reachability(ix: GraphIndex) -> Iterator[ValidationIssue]:
    """Nodes the start does not reach (through edges or a Map1), but notes
    and memory definitions."""
    if ix.start is None:
        return
    reached = {ix.start.id}
    queue = deque([ix.start.id])
    while queue:
        node_id = queue.popleft()
        for edge in ix.edges_from.get(node_id, ()):
            if edge.target_id in ix.nodes and edge.target_id not in reached:
                reached.add(edge.target_id)
                queue.append(edge.target_id)
        node = ix.nodes[node_id]
        if node.type_name == _MAP:  # a map reaches the node it runs
            item = map_item_node(ix.spec, node.metadata.get("node"))
            if item is not None:
                reached.add(item.id)
    for node in ix.nodes.values():
        if node.id not in reached and node.type_name not in _DETACHED_TYPES:
            yield warning(
                "orphan_node",
                f"{node.describe()} is not reachable from the start node {ix.start.describe()}",
                node.id,
            )


def map_item_node(spec: GraphSpec, ref: Any) -> GraphNode | None:
    """The node a Map1 node's ``node`` setting names: by id, else by its unique name."""
    if not isinstance(ref, str) or not ref:
        return None
    for node in spec.nodes:
        if str(node.id) == ref:
            return node
    named = [n for n in spec.nodes if n.name == ref]
    return named[0] if len(named) == 1 else None
