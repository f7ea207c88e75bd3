"""`GraphIndex`: the lookups a validation run builds once (nodes by id, edges by
source, the start node) and how its messages name nodes and edges."""

from __future__ import annotations

from uuid import UUID

from quartermaster_graph.models import GraphEdge, GraphNode, GraphSpec


class GraphIndex:
    """Lookups of one graph, built here rather than through the spec's own index so
    that validating never changes the spec (not even its caches)."""

    def __init__(self, spec: GraphSpec) -> None:
        self.spec = spec
        self.nodes: dict[UUID, GraphNode] = {}
        for node in spec.nodes:
            self.nodes.setdefault(node.id, node)
        self.edges_from: dict[UUID, list[GraphEdge]] = {}
        for edge in spec.edges:
            self.edges_from.setdefault(edge.source_id, []).append(edge)
        self.start = self.nodes.get(spec.start_node_id)

    def endpoint(self, node_id: UUID) -> str:
        """A node as messages name it: its quoted name, else its type."""
        node = self.nodes.get(node_id)
        if node is None:
            return "?"
        return f"'{node.name}'" if node.name else node.type_name

    def describe_edge(self, edge: GraphEdge) -> str:
        """An edge as messages name it: its ends, its label and its id."""
        arrow = f"-[{edge.label}]->" if edge.label else "->"
        source, target = self.endpoint(edge.source_id), self.endpoint(edge.target_id)
        return f"edge {source} {arrow} {target} (id {edge.id})"
