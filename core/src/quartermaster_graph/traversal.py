"""Graph traversal helpers (the module functions of quartermaster 0.1.5).

Each is answered from the `GraphSpec` index, in time linear in the graph's size
at most; edges to missing nodes are ignored.
"""

from __future__ import annotations

from collections import deque
from uuid import UUID

from quartermaster_graph.models import GraphNode, GraphSpec


class GraphCycleError(ValueError):
    """The graph has a cycle where an acyclic graph is needed; ``cycle`` lists it."""

    def __init__(self, spec: GraphSpec, cycle: list[GraphNode]) -> None:
        self.cycle = cycle
        names = " -> ".join(_name(node) for node in [*cycle, cycle[0]])
        graph = f"graph '{spec.name}'" if spec.name else "the graph"
        super().__init__(f"{graph} has a cycle, so it has no topological order: {names}")


def _name(node: GraphNode) -> str:
    return f"'{node.name}'" if node.name else f"{node.type_name} ({node.id})"


def _unique_nodes(spec: GraphSpec) -> list[GraphNode]:
    """The nodes in graph order, the first of each id only."""
    return [node for node in spec.nodes if spec.get_node(node.id) is node]


def get_start_node(spec: GraphSpec) -> GraphNode:
    """The start node; ValueError if ``start_node_id`` names no node.

    The message begins "No start node" as quartermaster-graph 0.1.5's did."""
    node = spec.get_start_node()
    if node is None:
        raise ValueError(
            f"No start node: start_node_id {spec.start_node_id} names no node of the graph"
        )
    return node


def get_successors(spec: GraphSpec, node_id: UUID) -> list[GraphNode]:
    """Distinct targets of the node's outgoing edges, in edge order."""
    return spec.get_successors(node_id)


def get_predecessors(spec: GraphSpec, node_id: UUID) -> list[GraphNode]:
    """Distinct sources of the node's incoming edges, in edge order."""
    return spec.get_predecessors(node_id)


def get_path(spec: GraphSpec, start_id: UUID, end_id: UUID) -> list[GraphNode]:
    """A shortest path from ``start_id`` to ``end_id`` (both included), or [] if none."""
    if spec.get_node(start_id) is None or spec.get_node(end_id) is None:
        return []
    parent: dict[UUID, UUID | None] = {start_id: None}
    queue = deque([start_id])
    while queue:
        current = queue.popleft()
        if current == end_id:
            path: list[GraphNode] = []
            step: UUID | None = current
            while step is not None:
                node = spec.get_node(step)
                assert node is not None  # every id in `parent` is a node of the graph
                path.append(node)
                step = parent[step]
            return path[::-1]
        for successor in spec.get_successors(current):
            if successor.id not in parent:
                parent[successor.id] = current
                queue.append(successor.id)
    return []


def topological_sort(spec: GraphSpec) -> list[GraphNode]:
    """The nodes in an order where every edge goes forward (Kahn's algorithm; ties
    keep graph order). Raises `GraphCycleError` naming a cycle if there is one."""
    nodes = _unique_nodes(spec)
    pending = {node.id: len(spec.get_predecessors(node.id)) for node in nodes}
    queue = deque(node for node in nodes if pending[node.id] == 0)
    order: list[GraphNode] = []
    while queue:
        node = queue.popleft()
        order.append(node)
        for successor in spec.get_successors(node.id):
            pending[successor.id] -= 1
            if pending[successor.id] == 0:
                queue.append(successor)
    if len(order) < len(nodes):
        stuck = [node.id for node in nodes if pending[node.id]]
        raise GraphCycleError(spec, _find_cycle(spec, stuck))
    return order


def _find_cycle(spec: GraphSpec, stuck: list[UUID]) -> list[GraphNode]:
    """A cycle among ``stuck``, the nodes Kahn's algorithm could not order: each has
    a predecessor among them, so walking predecessors from the first must loop."""
    remaining = set(stuck)
    step = stuck[0]
    seen: dict[UUID, int] = {}
    walk: list[UUID] = []
    while step not in seen:
        seen[step] = len(walk)
        walk.append(step)
        step = next(p.id for p in spec.get_predecessors(step) if p.id in remaining)
    # The walk went backwards; forwards, the cycle starts where the walk closed it.
    backwards = walk[seen[step] :]
    cycle = [backwards[0], *reversed(backwards[1:])]
    return [node for node_id in cycle if (node := spec.get_node(node_id)) is not None]


def find_decision_points(spec: GraphSpec) -> list[GraphNode]:
    """Nodes where the flow can branch: more than one outgoing edge."""
    return [node for node in _unique_nodes(spec) if len(spec.get_edges_from(node.id)) > 1]


def find_merge_points(spec: GraphSpec) -> list[GraphNode]:
    """Nodes where branches meet: more than one incoming edge."""
    return [node for node in _unique_nodes(spec) if len(spec.get_edges_to(node.id)) > 1]
