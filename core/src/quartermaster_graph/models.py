"""The graph model: nodes, edges and the graph spec that the runner executes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID, uuid4

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr

from quartermaster_graph.enums import (
    ErrorStrategy,
    MessageType,
    NodeType,
    ThoughtType,
    TraverseIn,
    TraverseOut,
)

if TYPE_CHECKING:
    from quartermaster_graph.validation import ValidationIssue


def _utcnow() -> datetime:
    return datetime.now(UTC)


#: Node metadata key naming the node's result in ``FlowResult.captures`` (the
#: builder's ``capture_as=`` keyword, as quartermaster 0.2+ wrote it).
CAPTURE_AS = "capture_as"

_KNOWN_TYPES: dict[str, NodeType] = {t.value: t for t in NodeType}


def _coerce_node_type(value: Any) -> Any:
    """Known type strings become `NodeType` members; any other string stays as it is."""
    if isinstance(value, str) and not isinstance(value, NodeType):
        return _KNOWN_TYPES.get(value, value)
    return value


def _check_type_name(value: NodeType | str) -> NodeType | str:
    if isinstance(value, str) and not value.strip():
        raise ValueError("node type must be a non-empty string")
    return value


NodeTypeName = Annotated[
    NodeType | str,
    BeforeValidator(_check_type_name),
    BeforeValidator(_coerce_node_type),
]


def type_name(node_type: NodeType | str) -> str:
    """The plain string of a node type (``NodeType.START`` -> ``"Start1"``)."""
    return node_type.value if isinstance(node_type, NodeType) else node_type


class NodePosition(BaseModel):
    """Visual position of a node in an editor."""

    model_config = ConfigDict(extra="forbid")

    x: int = 0
    y: int = 0
    icon: str | None = None


class GraphNode(BaseModel):
    """A node of the graph: what runs (``type`` and ``metadata``) and how it connects.

    ``type`` is a `NodeType` or any other non-empty string naming a third-party
    node type. ``metadata`` holds the node type's own settings.
    """

    model_config = ConfigDict(extra="forbid")

    id: UUID = Field(default_factory=uuid4)
    type: NodeTypeName
    name: str = ""
    traverse_in: TraverseIn = TraverseIn.AWAIT_FIRST
    traverse_out: TraverseOut = TraverseOut.SPAWN_ALL
    thought_type: ThoughtType = ThoughtType.NEW
    message_type: MessageType = MessageType.AUTOMATIC
    error_handling: ErrorStrategy = ErrorStrategy.STOP
    metadata: dict[str, Any] = Field(default_factory=dict)
    position: NodePosition | None = None

    max_retries: int = Field(default=3, ge=0)
    retry_delay: float = Field(default=1.0, ge=0)
    timeout: float | None = Field(default=None, gt=0)

    @property
    def type_name(self) -> str:
        """The node type as a plain string (``"Start1"``, ``"acme.Classifier"``)."""
        return type_name(self.type)

    def describe(self) -> str:
        """``'Name' (id)``: how errors refer to this node."""
        return f"'{self.name}' ({self.id})" if self.name else f"{self.type_name} ({self.id})"


class GraphEdge(BaseModel):
    """A directed edge. ``label`` names the branch for decision-like nodes."""

    model_config = ConfigDict(extra="forbid")

    id: UUID = Field(default_factory=uuid4)
    source_id: UUID
    target_id: UUID
    label: str = ""
    is_main: bool = True
    points: list[tuple[float, float]] = Field(default_factory=list)


class _GraphIndex:
    """Lookups over a graph's nodes and edges, built once and reused by every query."""

    __slots__ = ("edges_from", "edges_to", "key", "nodes", "predecessors", "successors")

    def __init__(self, spec: GraphSpec) -> None:
        self.key = _index_key(spec)
        self.nodes: dict[UUID, GraphNode] = {}
        for node in spec.nodes:
            self.nodes.setdefault(node.id, node)
        self.edges_from: dict[UUID, list[GraphEdge]] = {}
        self.edges_to: dict[UUID, list[GraphEdge]] = {}
        for edge in spec.edges:
            self.edges_from.setdefault(edge.source_id, []).append(edge)
            self.edges_to.setdefault(edge.target_id, []).append(edge)
        self.successors: dict[UUID, list[GraphNode]] = {}
        self.predecessors: dict[UUID, list[GraphNode]] = {}

    def neighbours(self, node_id: UUID, outgoing: bool) -> list[GraphNode]:
        cache = self.successors if outgoing else self.predecessors
        found = cache.get(node_id)
        if found is None:
            edges = (self.edges_from if outgoing else self.edges_to).get(node_id, [])
            seen: set[UUID] = set()
            found = []
            for edge in edges:
                other = edge.target_id if outgoing else edge.source_id
                node = self.nodes.get(other)
                if node is not None and other not in seen:
                    seen.add(other)
                    found.append(node)
            cache[node_id] = found
        return found


def _index_key(spec: GraphSpec) -> tuple[int, int, int, int]:
    # Rebuild the index when the node or edge list is replaced or grows/shrinks.
    return (id(spec.nodes), len(spec.nodes), id(spec.edges), len(spec.edges))


class GraphSpec(BaseModel):
    """A complete graph definition: nodes, edges and the start node.

    Queries (`get_node`, `get_successors`, ...) are answered from an index built on
    first use, not by scanning the node and edge lists on every call.
    """

    model_config = ConfigDict(extra="forbid")

    id: UUID = Field(default_factory=uuid4)
    agent_id: UUID = Field(default_factory=uuid4)
    name: str = ""
    start_node_id: UUID
    nodes: list[GraphNode] = Field(default_factory=list)
    edges: list[GraphEdge] = Field(default_factory=list)
    features: str = ""
    created_at: datetime = Field(default_factory=_utcnow)

    _index: _GraphIndex | None = PrivateAttr(default=None)
    _source_path: Path | None = PrivateAttr(default=None)

    @property
    def source_path(self) -> Path | None:
        """The file `load_graph` read this graph from (absolute), if any. Not saved with
        the graph: node types use it to resolve files named relative to the graph."""
        return self._source_path

    def __eq__(self, other: object) -> bool:
        # Pydantic's equality also compares private attributes; the lookup index is
        # a cache, so two specs with the same fields are equal whether or not one
        # of them has answered queries.
        if not isinstance(other, GraphSpec):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]

    def _idx(self) -> _GraphIndex:
        index = self._index
        if index is None or index.key != _index_key(self):
            index = self._index = _GraphIndex(self)
        return index

    def get_node(self, node_id: UUID) -> GraphNode | None:
        """The node with this id, or None."""
        return self._idx().nodes.get(node_id)

    def get_node_by_name(self, name: str) -> GraphNode | None:
        """The first node with this name, or None."""
        for node in self.nodes:
            if node.name == name:
                return node
        return None

    def get_start_node(self) -> GraphNode | None:
        """The start node, or None when ``start_node_id`` names no node."""
        return self.get_node(self.start_node_id)

    def get_successors(self, node_id: UUID) -> list[GraphNode]:
        """Distinct targets of the node's outgoing edges, in edge order."""
        return self._idx().neighbours(node_id, outgoing=True)

    def get_predecessors(self, node_id: UUID) -> list[GraphNode]:
        """Distinct sources of the node's incoming edges, in edge order."""
        return self._idx().neighbours(node_id, outgoing=False)

    def get_edges_from(self, node_id: UUID) -> list[GraphEdge]:
        """The node's outgoing edges, in graph order."""
        return self._idx().edges_from.get(node_id, [])

    def get_edges_to(self, node_id: UUID) -> list[GraphEdge]:
        """The node's incoming edges, in graph order."""
        return self._idx().edges_to.get(node_id, [])

    def validate(self) -> list[ValidationIssue]:  # type: ignore[override]
        """Check the graph; raise `GraphValidationError` listing every error at once.

        Returns the warnings (unreachable nodes, ...) when there is no error.
        """
        from quartermaster_graph.validation import check_graph

        return check_graph(self)

    def to_json(self, *, indent: int | None = 2) -> str:
        """The graph as JSON (ids and every field; loads back to an equal graph)."""
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "<string>") -> GraphSpec:
        """Parse a graph from JSON text; errors name ``source`` and the field path."""
        from quartermaster_graph.files import parse_graph_text

        return parse_graph_text(text, fmt="json", source=source)

    def to_yaml(self) -> str:
        """The graph as YAML (ids and every field; loads back to an equal graph)."""
        from quartermaster_graph.files import dump_graph_text

        return dump_graph_text(self, fmt="yaml")

    @classmethod
    def from_yaml(cls, text: str | bytes, *, source: str = "<string>") -> GraphSpec:
        """Parse a graph from YAML text, in the full or the hand-written form."""
        from quartermaster_graph.files import parse_graph_text

        return parse_graph_text(text, fmt="yaml", source=source)

    def save(self, path: str | Path) -> None:
        """Write the graph to ``path`` (``.json``, ``.yaml`` or ``.yml``)."""
        from quartermaster_graph.files import save_graph

        save_graph(self, path)


class Agent(BaseModel):
    """Top-level agent definition (kept from 0.1.5)."""

    id: UUID = Field(default_factory=uuid4)
    name: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=_utcnow)
    updated_at: datetime = Field(default_factory=_utcnow)


#: Deprecated alias of `GraphSpec` (its name in earlier releases).
AgentGraph = GraphSpec
#: Deprecated alias of `GraphSpec`.
AgentVersion = GraphSpec
