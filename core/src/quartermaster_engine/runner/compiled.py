"""A graph compiled once for execution: adjacency, join shapes, branch lookups and loops.

Everything the scheduler asks per activation is answered here in O(1):
successors, the forward incoming edges a join waits for, the edge a decision's
pick selects, and which loops a node belongs to.

Loops. Edges are classified by a depth-first search from the start node: an
edge to a node still on the search stack is a *back edge* (as is the implicit
edge of a SpawnStart node to the start node). A back edge starts a new visit of
its target. Each back edge defines a natural loop (its target, the header, plus
every node that reaches its source without passing the header). An edge that
leaves a loop is an *exit edge* of the outermost loop it leaves: while that
loop still runs, the exit may yet be taken, so a "not taken" signal on it is
held back until the loop has nothing left in flight (see `Scheduler`).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from quartermaster_engine.runner.map_state import CMap, link_maps
from quartermaster_engine.types import (
    ErrorStrategy,
    GraphEdge,
    GraphNode,
    GraphSpec,
    MessageType,
    NodeType,
    ThoughtType,
    TraverseIn,
    TraverseOut,
)
from quartermaster_graph.validation import check_graph

_NO_EDGES: list[CEdge] = []  # shared and never mutated: nodes without edges

# traverse_out, as small ints for the hot path; OUT_LATE: a wait with a deadline
# edge (metadata ``on_timeout_edge``, `runner.deadlines`), set when compiled
OUT_ALL, OUT_NONE, OUT_START, OUT_PICKED, OUT_LATE = 0, 1, 2, 3, 4
_OUT_MODE = {
    TraverseOut.SPAWN_ALL: OUT_ALL,
    TraverseOut.SPAWN_NONE: OUT_NONE,
    TraverseOut.SPAWN_START: OUT_START,
    TraverseOut.SPAWN_PICKED: OUT_PICKED,
}

# thought types, reduced to how the input messages are built
THOUGHT_SKIP, THOUGHT_NEW, THOUGHT_INHERIT, THOUGHT_CONTINUE = 0, 1, 2, 3
_THOUGHT_MODE = {
    ThoughtType.SKIP: THOUGHT_SKIP,
    ThoughtType.NEW: THOUGHT_NEW,
    ThoughtType.NEW_HIDDEN: THOUGHT_NEW,
    ThoughtType.NEW_COLLAPSED: THOUGHT_NEW,
    ThoughtType.NEW_HIDDEN_AND_NORMAL: THOUGHT_NEW,
    ThoughtType.HIDDEN_USER: THOUGHT_NEW,
    ThoughtType.HIDDEN_AGENT: THOUGHT_NEW,
    ThoughtType.INHERIT: THOUGHT_INHERIT,
    ThoughtType.CONTINUE: THOUGHT_CONTINUE,
    ThoughtType.APPEND: THOUGHT_CONTINUE,
    ThoughtType.EDIT_SAME: THOUGHT_CONTINUE,
    ThoughtType.EDIT_OR_NEW: THOUGHT_CONTINUE,
    ThoughtType.USE_PREVIOUS: THOUGHT_CONTINUE,
}


class CLoop:
    """A natural loop: its header, its body and the exit edges it owns."""

    __slots__ = ("body", "exits", "header", "idx")

    def __init__(self, idx: int, header: CNode, body: frozenset[int]) -> None:
        self.idx = idx
        self.header = header
        self.body = body
        self.exits: list[CEdge] = []


class CEdge:
    """A compiled edge."""

    __slots__ = ("back", "edge", "exit_loop", "idx", "in_pos", "source", "target")

    def __init__(self, idx: int, edge: GraphEdge | None, source: CNode, target: CNode) -> None:
        self.idx = idx
        self.edge = edge
        self.source = source
        self.target = target
        self.back = False
        self.exit_loop: CLoop | None = None
        # Position among the target's forward incoming edges (join slot index).
        self.in_pos = -1

    @property
    def id(self) -> UUID:
        """The edge id (the target's id for the implicit edge of a SpawnStart node)."""
        return self.edge.id if self.edge is not None else self.target.node_id

    @property
    def label(self) -> str:
        return self.edge.label if self.edge is not None else ""


class CNode:
    """A compiled node with everything the scheduler needs per activation."""

    __slots__ = (
        "await_all",
        "idx",
        "in_fwd",
        "is_back",
        "is_end",
        "is_start",
        "item_of",
        "loops",
        "map",
        "max_visits",
        "n_in_fwd",
        "name",
        "node",
        "node_id",
        "out_edges",
        "out_mode",
        "pick_map",
        "plain_input",
        "timeout",
        "type_name",
    )

    def __init__(self, idx: int, node: GraphNode) -> None:
        self.idx = idx
        self.node = node
        self.node_id = node.id
        self.name = node.name
        self.type_name = node.type_name
        self.is_start = node.type == NodeType.START
        # Back1 loops back to the start node whatever its traverse_out says; in a
        # sub-graph's flow it ends the flow instead, its output the final one (`Router`).
        self.is_back = node.type == NodeType.BACK
        self.is_end = node.type == NodeType.END or self.is_back
        self.await_all = node.traverse_in == TraverseIn.AWAIT_ALL
        self.out_mode = OUT_START if self.is_back else _OUT_MODE[node.traverse_out]
        self.timeout = node.timeout
        meta = node.metadata
        if self.out_mode == OUT_ALL and "on_timeout_edge" in meta:
            self.out_mode = OUT_LATE
        # Nothing to build for the input history: no system text, no inherited or
        # continued history, no input message (the common case of plain nodes).
        self.plain_input = (
            _THOUGHT_MODE[node.thought_type] in (THOUGHT_SKIP, THOUGHT_NEW)
            and not self.system_instruction
            and node.message_type == MessageType.AUTOMATIC
        )
        # A Back1's iteration limit is its visit limit: the loop runs at most that often.
        limit = meta.get("max_visits", meta.get("max_iterations") if self.is_back else None)
        self.max_visits: int | None = int(limit) if limit is not None else None
        # Lists, not tuples: converting 100,000 of them would double peak memory.
        self.out_edges: list[CEdge] = _NO_EDGES
        self.in_fwd: list[CEdge] = _NO_EDGES
        self.n_in_fwd = 0
        # Built on the first pick: most nodes never pick a branch.
        self.pick_map: dict[str, CEdge] | None = None
        self.loops: tuple[CLoop, ...] = ()
        # Map1 nodes and the nodes they map (`map_state.link_maps`).
        self.map: CMap | None = None
        self.item_of: CMap | None = None

    # Read on cold paths only (failures, message building): kept on the node, not
    # copied into every compiled node, which matters for graphs of 100,000 nodes.
    @property
    def metadata(self) -> dict[str, Any]:
        return self.node.metadata

    @property
    def thought_mode(self) -> int:
        return _THOUGHT_MODE[self.node.thought_type]

    @property
    def error_mode(self) -> ErrorStrategy:
        return self.node.error_handling

    @property
    def max_retries(self) -> int:
        """Further attempts after the first (0 unless the strategy is RETRY)."""
        node = self.node
        return node.max_retries if node.error_handling == ErrorStrategy.RETRY else 0

    @property
    def message_type(self) -> MessageType:
        return self.node.message_type

    @property
    def retry_delay(self) -> float:
        return self.node.retry_delay

    @property
    def system_instruction(self) -> str:
        """The node's system instruction: ``llm_system_instruction`` or ``system_instruction``."""
        meta = self.node.metadata
        return str(meta.get("llm_system_instruction") or meta.get("system_instruction") or "")

    def describe(self) -> str:
        return self.node.describe()


class CompiledGraph:
    """The execution view of a `GraphSpec`; built once per runner."""

    def __init__(self, spec: GraphSpec, *, validate: bool = True) -> None:
        if validate:
            check_graph(spec)
        self.spec = spec
        self.nodes: list[CNode] = [CNode(i, n) for i, n in enumerate(spec.nodes)]
        by_id: dict[UUID, CNode] = {c.node_id: c for c in self.nodes}
        start = by_id.get(spec.start_node_id)
        if start is None:  # check_graph reports this; only reachable with validate=False
            raise ValueError(f"start node {spec.start_node_id} is not in the graph")
        self.start: CNode = start
        self.edges: list[CEdge] = []
        for edge in spec.edges:
            source = by_id.get(edge.source_id)
            target = by_id.get(edge.target_id)
            if source is not None and target is not None:
                cedge = CEdge(len(self.edges), edge, source, target)
                self.edges.append(cedge)
                if source.out_edges:
                    source.out_edges.append(cedge)
                else:
                    source.out_edges = [cedge]
        # SpawnStart nodes loop back to the start node through an implicit edge.
        self.start_edges: dict[int, CEdge] = {}
        for cnode in self.nodes:
            if cnode.out_mode == OUT_START:
                self.start_edges[cnode.idx] = CEdge(-1, None, cnode, self.start)
        self._classify_edges()
        self._find_loops()
        self._index_joins()
        link_maps(self.nodes, by_id, spec)
        self.loops_by_header: dict[UUID, CLoop] = {lp.header.node_id: lp for lp in self.loops}
        self._edge_by_id: dict[UUID, CEdge] | None = None
        # Dropped after compiling (about 5 MB at 100,000 nodes); rebuilt on demand.
        self._by_id: dict[UUID, CNode] | None = None
        del by_id

    @property
    def by_id(self) -> dict[UUID, CNode]:
        """Compiled nodes by node id (built on first use: restoring a flow, naming
        predecessors, error messages)."""
        if self._by_id is None:
            self._by_id = {c.node_id: c for c in self.nodes}
        return self._by_id

    @property
    def edge_by_id(self) -> dict[UUID, CEdge]:
        """Compiled edges by edge id (built on first use: only restoring a flow needs it)."""
        if self._edge_by_id is None:
            self._edge_by_id = {e.id: e for e in self.edges}
        return self._edge_by_id

    # -- construction ----------------------------------------------------------

    def _successor_edges(self, cnode: CNode) -> list[CEdge]:
        implicit = self.start_edges.get(cnode.idx)
        return cnode.out_edges if implicit is None else [*cnode.out_edges, implicit]

    def _classify_edges(self) -> None:
        """Iterative DFS from the start node marking reachable nodes and back edges."""
        WHITE, GRAY, BLACK = 0, 1, 2
        color = [WHITE] * len(self.nodes)
        start = self.start
        color[start.idx] = GRAY
        reachable = self.reachable = bytearray(len(self.nodes))
        reachable[start.idx] = 1
        stack: list[tuple[CNode, int]] = [(start, 0)]
        while stack:
            cnode, pos = stack[-1]
            edges = self._successor_edges(cnode)
            if pos == len(edges):
                color[cnode.idx] = BLACK
                stack.pop()
                continue
            stack[-1] = (cnode, pos + 1)
            edge = edges[pos]
            target = edge.target
            if color[target.idx] == GRAY:
                edge.back = True
            elif color[target.idx] == WHITE:
                color[target.idx] = GRAY
                reachable[target.idx] = 1
                stack.append((target, 0))

    def _find_loops(self) -> None:
        preds: dict[int, list[int]] = {}
        reachable = self.reachable
        for edge in self.edges:
            if reachable[edge.source.idx]:
                preds.setdefault(edge.target.idx, []).append(edge.source.idx)
        for src_idx, edge in self.start_edges.items():
            if reachable[edge.source.idx]:
                preds.setdefault(self.start.idx, []).append(src_idx)
        bodies: dict[int, set[int]] = {}
        back_edges = [e for e in (*self.edges, *self.start_edges.values()) if e.back]
        for edge in back_edges:
            header = edge.target.idx
            body = bodies.setdefault(header, {header})
            work = [edge.source.idx]
            while work:
                n = work.pop()
                if n in body:
                    continue
                body.add(n)
                work.extend(preds.get(n, ()))
        # Outermost (largest) first, so node.loops is ordered outermost to innermost.
        ordered = sorted(bodies.items(), key=lambda item: (-len(item[1]), item[0]))
        self.loops: list[CLoop] = [
            CLoop(i, self.nodes[h], frozenset(body)) for i, (h, body) in enumerate(ordered)
        ]
        members: dict[int, list[CLoop]] = {}
        for loop in self.loops:
            for n in loop.body:
                members.setdefault(n, []).append(loop)
        for cnode in self.nodes:
            cnode.loops = tuple(members.get(cnode.idx, ()))
        for edge in self.edges:
            if edge.back:
                continue
            for loop in edge.source.loops:
                if edge.target.idx not in loop.body:
                    edge.exit_loop = loop
                    loop.exits.append(edge)
                    break

    def _index_joins(self) -> None:
        """Number each node's forward incoming edges; list them for joins only."""
        reachable = self.reachable
        nodes = self.nodes
        for edge in self.edges:
            # An edge from a node the start cannot reach will never deliver: joins
            # must not wait for it.
            if not edge.back and reachable[edge.source.idx]:
                target = edge.target
                edge.in_pos = target.n_in_fwd
                target.n_in_fwd += 1
        for edge in self.edges:
            if edge.in_pos >= 0 and edge.target.n_in_fwd > 1:
                target = nodes[edge.target.idx]
                if target.in_fwd:
                    target.in_fwd.append(edge)
                else:
                    target.in_fwd = [edge]

    # -- queries ---------------------------------------------------------------

    def pick(self, cnode: CNode, picked: str | None) -> CEdge | None:
        """The outgoing edge a decision's answer selects, or None. An answer that
        matches nothing as given is tried once more without surrounding
        whitespace, as 0.1.5 did (LLM answers often end in a newline)."""
        if not picked:
            return None
        pick_map = cnode.pick_map
        if pick_map is None:
            pick_map = cnode.pick_map = _pick_map(cnode.out_edges)
        edge = pick_map.get(picked)
        return edge if edge is not None else pick_map.get(picked.strip())

    def choices(self, cnode: CNode) -> list[str]:
        """The answers a decision node accepts, for error messages."""
        return [e.label or e.target.name or str(e.target.node_id) for e in cnode.out_edges]


def _pick_map(edges: list[CEdge]) -> dict[str, CEdge]:
    """Answer -> edge: edge label first, then target name, then target id."""
    mapping: dict[str, CEdge] = {}
    for edge in edges:
        mapping.setdefault(str(edge.target.node_id), edge)
    for edge in edges:
        if edge.target.name:
            mapping[edge.target.name] = edge
    for edge in edges:
        if edge.label:
            mapping[edge.label] = edge
    return mapping


__all__ = [
    "OUT_ALL",
    "OUT_LATE",
    "OUT_NONE",
    "OUT_PICKED",
    "OUT_START",
    "THOUGHT_CONTINUE",
    "THOUGHT_INHERIT",
    "THOUGHT_NEW",
    "THOUGHT_SKIP",
    "CEdge",
    "CLoop",
    "CNode",
    "CompiledGraph",
    "MessageType",
]
