"""Fluent graph builder: ``GraphBuilder("name").start()...end().build()`` -> `GraphSpec`.

Every node method adds one node, connects it from the current last node and
returns the builder, so calls chain. Decisions open branches with ``on(label)``,
parallel fan-outs with ``branch()``; a branch's ``end()`` closes it and returns
to its parent, whose next node (or merge) receives the ends of all closed
branches. Open ends left at ``build()`` go to the graph's single End node.

Cost is constant per added node: nodes are indexed by id and by name as they are
added, so no method scans the graph.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Self
from uuid import UUID, uuid4

from quartermaster_graph.building.chain import BranchBuilder, Chain
from quartermaster_graph.building.making import (
    INSTRUCTION_FORM,
    NODE_OPTIONS,
    make_node,
    node_defaults,
)
from quartermaster_graph.building.waits import Take
from quartermaster_graph.enums import NodeType
from quartermaster_graph.models import (
    Agent,
    GraphEdge,
    GraphNode,
    GraphSpec,
    NodePosition,
)
from quartermaster_graph.validation import check_graph

#: Vertical distance between the positions the builder gives consecutive nodes.
_ROW_HEIGHT = 120


class GraphBuilder(Chain):
    """Fluent builder of a `GraphSpec`. As in quartermaster-graph 0.1.5 a graph
    starts with ``start()``; with ``auto_start=True`` (the default of `Graph`, as
    quartermaster 0.2+ builders did) the first node added without it gets a Start
    node before it.

    >>> spec = (
    ...     GraphBuilder("Support Agent")
    ...     .start()
    ...     .instruction("Classify", model="gpt-4o")
    ...     .decision("Route", options=["billing", "technical"])
    ...     .on("billing").instruction("Handle billing").end()
    ...     .on("technical").instruction("Handle technical").end()
    ...     .build()
    ... )
    >>> [node.name for node in spec.nodes]
    ['Start', 'Classify', 'Route', 'Handle billing', 'Handle technical', 'End', 'End']
    """

    def __init__(self, name: str, description: str = "", *, auto_start: bool = False) -> None:
        super().__init__()
        self._root = self
        self._auto_start = auto_start
        self._name = name
        self.description = description
        self._nodes: list[GraphNode] = []
        self._edges: list[GraphEdge] = []
        self._nodes_by_id: dict[UUID, GraphNode] = {}
        self._ids_by_name: dict[str, list[UUID]] = {}
        self._start_id: UUID | None = None
        self._end_id: UUID | None = None
        self._open_branches: dict[BranchBuilder[Any], None] = {}
        #: Ends of closed branches that get an End node each at build (deadline branches).
        self._own_ends: list[tuple[UUID, str]] = []

    @property
    def name(self) -> str:
        """The graph's name (``GraphSpec.name`` of what `build` returns)."""
        return self._name

    @property
    def nodes(self) -> list[GraphNode]:
        """The nodes added so far (a copy of the list)."""
        return list(self._nodes)

    @property
    def edges(self) -> list[GraphEdge]:
        """The edges added so far (a copy of the list)."""
        return list(self._edges)

    @property
    def start_node_id(self) -> UUID:
        """The Start node's id; ValueError before ``start()``."""
        if self._start_id is None:
            raise ValueError(f"No start node in graph '{self._name}': call .start() first")
        return self._start_id

    # -- queries (0.1.5's builder API; the built GraphSpec has the same) ----

    def get_node(self, node_id: UUID) -> GraphNode | None:
        """The node added with this id, or None."""
        return self._nodes_by_id.get(node_id)

    def get_successors(self, node_id: UUID) -> list[GraphNode]:
        """Distinct targets of the node's edges added so far, in edge order."""
        targets = dict.fromkeys(e.target_id for e in self._edges if e.source_id == node_id)
        return [self._nodes_by_id[t] for t in targets if t in self._nodes_by_id]

    def get_edges_from(self, node_id: UUID) -> list[GraphEdge]:
        """The edges added so far that start at the node."""
        return [e for e in self._edges if e.source_id == node_id]

    # -- bookkeeping --------------------------------------------------------

    def _register(self, node: GraphNode) -> None:
        if node.id in self._nodes_by_id:
            other = self._nodes_by_id[node.id]
            raise ValueError(f"node '{node.name}' has the same id as {other.describe()}")
        if node.position is None:
            # A top-to-bottom column in the order of adding, as 0.1.5 laid nodes out,
            # so that editors can draw a built graph.
            node.position = NodePosition(x=0, y=_ROW_HEIGHT * len(self._nodes))
        self._nodes.append(node)
        self._nodes_by_id[node.id] = node
        self._ids_by_name.setdefault(node.name, []).append(node.id)

    def _link(self, source: UUID, target: UUID, label: str = "", is_main: bool = True) -> None:
        self._edges.append(
            GraphEdge(source_id=source, target_id=target, label=label, is_main=is_main)
        )

    def _label_of(self, node_id: UUID | None) -> str:
        node = self._nodes_by_id.get(node_id) if node_id else None
        return f"'{node.name}' ({node.type_name})" if node else "?"

    def _find(self, name: str) -> UUID:
        ids = self._ids_by_name.get(name, [])
        if len(ids) == 1:
            return ids[0]
        if ids:
            raise ValueError(
                f"connect(): {len(ids)} nodes of graph '{self._name}' are named '{name}' "
                f"(ids {', '.join(map(str, ids))}); use edge(source_id, target_id)"
            )
        close = difflib.get_close_matches(name, list(self._ids_by_name), n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"connect(): graph '{self._name}' has no node named '{name}'{hint}")

    def _end_node(self, kwargs: Mapping[str, Any]) -> UUID:
        """The graph's single End node, created on first use (with ``kwargs``).

        Once the main chain has ended nothing more can reach End except through
        `build`, which passes no options, so options never meet an existing End."""
        if self._end_id is None:
            end = make_node(NodeType.END, "End", {}, kwargs)
            self._register(end)
            self._end_id = end.id
        return self._end_id

    def _inline(
        self, sub_graph: GraphSpec | GraphBuilder
    ) -> tuple[list[UUID], list[tuple[UUID, str]], list[GraphEdge]]:
        """Add the nodes of ``sub_graph`` but Start/End, with fresh ids; return its entry
        nodes (after Start), exits ((node, edge label) before End) and inner edges."""
        if sub_graph is self:
            raise ValueError(f"use(): graph '{self._name}' cannot inline itself")
        if isinstance(sub_graph, GraphBuilder):
            nodes, edges = sub_graph._nodes, sub_graph._edges
            pending = list(sub_graph._open_ends)
            if sub_graph._tail is not None:
                pending.append((sub_graph._tail, sub_graph._tail_label))
        else:
            nodes, edges, pending = sub_graph.nodes, sub_graph.edges, []
        start_type, end_type = NodeType.START.value, NodeType.END.value
        dropped = {n.id: n.type_name for n in nodes if n.type_name in (start_type, end_type)}
        fresh: dict[UUID, UUID] = {}
        for node in nodes:
            if node.id not in dropped and node.id not in fresh:
                copy = node.model_copy(update={"id": uuid4()}, deep=True)
                fresh[node.id] = copy.id
                self._register(copy)
        entries: dict[UUID, None] = {}
        exits: dict[tuple[UUID, str], None] = {}
        has_incoming: set[UUID] = set()
        has_outgoing: set[UUID] = set()
        inner: list[GraphEdge] = []
        for edge in edges:
            source, target = fresh.get(edge.source_id), fresh.get(edge.target_id)
            if source and target:
                inner.append(
                    GraphEdge(
                        source_id=source,
                        target_id=target,
                        label=edge.label,
                        is_main=edge.is_main,
                        points=list(edge.points),
                    )
                )
                has_outgoing.add(source)
                has_incoming.add(target)
            elif target and dropped.get(edge.source_id) == start_type:
                entries[target] = None
            elif source and dropped.get(edge.target_id) == end_type:
                exits[(source, edge.label)] = None
        for node_id, label in pending:
            if node_id in fresh:
                exits[(fresh[node_id], label)] = None
        kept = list(fresh.values())
        if not entries:
            entries = dict.fromkeys(n for n in kept if n not in has_incoming) or dict.fromkeys(
                kept[:1]
            )
        if not exits:
            exits = {(n, ""): None for n in kept if n not in has_outgoing}
        return list(entries), list(exits), inner

    def _attach(self, node: GraphNode) -> Self:
        # Graph("x").user()... : the first node of a graph without start() gets a
        # Start node before it, as quartermaster 0.2+ builders did.
        if self._auto_start and not self._nodes and node.type_name != NodeType.START.value:
            self.start()
        return super()._attach(node)

    # -- start and end ------------------------------------------------------

    def start(self, **kwargs: Any) -> Self:
        """Add the Start node; every graph has exactly one. Optional with
        ``auto_start`` (`Graph`): the first node added without it gets one first."""
        if self._start_id is not None:
            raise ValueError(f"start() called twice: graph '{self._name}' already has a Start node")
        self._attach(make_node(NodeType.START, "Start", {}, kwargs))
        self._start_id = self._nodes[-1].id
        return self

    def end(self, **kwargs: Any) -> Self:
        """Connect the last node (and the ends of closed branches) to the graph's single
        End node, created on first use (``kwargs`` set its options and metadata).
        Nothing can be added after it."""
        if self._tail is None and not self._open_ends:
            raise ValueError(
                f"end() in graph '{self._name}': nothing to connect to End; "
                + self._no_tail_reason()
            )
        end_id = self._end_node(kwargs)
        self._connect_into(end_id)
        self._tail, self._tail_label, self._open_ends = None, "", []
        self._fork = self._fork_kind = None
        return self

    # -- output -------------------------------------------------------------

    def to_graph(self, validate: bool = True, agent_id: UUID | None = None) -> GraphSpec:
        """The `GraphSpec`. Each closed branch that nothing continued gets an End node
        of its own, and a last node still open is connected to the graph's End.
        Raises `GraphValidationError` listing every error unless ``validate`` is False."""
        if self._start_id is None:
            raise ValueError(f"graph '{self._name}' has no start node: call .start() first")
        if self._open_branches:
            unclosed = next(iter(self._open_branches))
            raise ValueError(f"{unclosed._where()} was never closed with .end()")
        # Branches closed with .end() that nothing continued each get their own End
        # node, as quartermaster-graph 0.1.5 built them (docs/builder.md#ends).
        for node_id, label in [*self._own_ends, *self._open_ends]:
            end = make_node(NodeType.END, "End", {}, {})
            self._register(end)
            self._link(node_id, end.id, label)
        self._open_ends, self._own_ends = [], []
        if self._tail is not None:
            self.end()
        spec = GraphSpec(
            name=self._name,
            agent_id=agent_id or uuid4(),
            start_node_id=self._start_id,
            nodes=list(self._nodes),
            edges=list(self._edges),
        )
        if validate:
            check_graph(spec)
        return spec

    def build(self, validate: bool = True) -> GraphSpec:
        """Same as `to_graph`: the validated `GraphSpec`."""
        return self.to_graph(validate=validate)

    def to_agent(self, validate: bool = True) -> Agent:
        """An `Agent` record for this graph (0.1.5 API); builds (and validates) it first."""
        self.to_graph(validate=validate)
        now = datetime.now(UTC)
        return Agent(name=self._name, description=self.description, created_at=now, updated_at=now)


#: The name of `BranchBuilder` in quartermaster-graph 0.1.5, which code imports.
_BranchBuilder = BranchBuilder


class Graph(GraphBuilder):
    """`GraphBuilder` that adds its own Start node (quartermaster 0.2+):
    ``Graph("Chat").user("Ask").instruction("Reply").build()``. ``start()`` may
    still open the chain."""

    def __init__(self, name: str, description: str = "", *, auto_start: bool = True) -> None:
        super().__init__(name, description, auto_start=auto_start)


__all__ = [
    "INSTRUCTION_FORM",
    "NODE_OPTIONS",
    "BranchBuilder",
    "Graph",
    "GraphBuilder",
    "Take",
    "_BranchBuilder",
    "node_defaults",
]
