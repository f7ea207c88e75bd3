"""Graph validation: every structural problem of a graph, found in one linear pass.

`validate_graph` returns all problems (errors and warnings); `check_graph` raises
`GraphValidationError` listing every error at once. Cycles are allowed: loops are
a feature of agent graphs, so they are never reported. A graph without an End node
is valid too (a flow ends when no work is left; its ``final_output`` is then "").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from quartermaster_graph.enums import NodeType, TraverseOut
from quartermaster_graph.models import CAPTURE_AS, GraphEdge, GraphNode, GraphSpec

Severity = Literal["error", "warning"]

#: Node types that choose one successor; they should use ``SpawnPickedNode``.
BRANCHING_TYPES: frozenset[str] = frozenset(
    t.value
    for t in (
        NodeType.DECISION,
        NodeType.IF,
        NodeType.SWITCH,
        NodeType.STATIC_DECISION,
        NodeType.USER_DECISION,
    )
)

#: Node types that are not meant to be reached through edges (notes, memory definitions).
_DETACHED_TYPES: frozenset[str] = frozenset(
    t.value for t in (NodeType.COMMENT, NodeType.FLOW_MEMORY, NodeType.USER_MEMORY)
)
_START = NodeType.START.value
_END = NodeType.END.value
_MAP = NodeType.MAP.value

#: Every code `validate_graph` reports, with its severity (documented in docs/graph-files.md).
#: Problems that quartermaster-graph 0.1.5 also reported keep its snake_case codes, so
#: code filtering on ``issue.code`` written for 0.1.5 keeps working; ours are kebab-case.
ISSUE_CODES: dict[str, Severity] = {
    "no_start": "error",
    "invalid_start_id": "error",
    "start_id_not_start_type": "error",
    "multiple_starts": "error",
    "duplicate-node-id": "error",
    "duplicate-edge-id": "error",
    "invalid_edge_source": "error",
    "invalid_edge_target": "error",
    "picked-edge-duplicate-label": "error",
    "picked-edge-ambiguous": "error",
    "capture-name-invalid": "error",
    "on-timeout-edge-invalid": "error",
    "duplicate-capture-name": "error",
    "map-node-invalid": "error",
    "orphan_node": "warning",
    "picked-too-few-edges": "warning",
    "duplicate-node-name": "warning",
    "branching-node-spawns-all": "warning",
}


@dataclass(frozen=True)
class ValidationIssue:
    """One problem of a graph: a stable ``code`` (see `ISSUE_CODES`), a message naming the
    node or edge by name and id, and whether it is an error or a warning."""

    code: str
    message: str
    severity: Severity
    node_id: UUID | None = None
    edge_id: UUID | None = None

    @property
    def is_error(self) -> bool:
        """True for errors, False for warnings."""
        return self.severity == "error"

    def __str__(self) -> str:
        return f"{self.severity} [{self.code}] {self.message}"


#: The name of `ValidationIssue` in quartermaster 0.1.5.
ValidationError = ValidationIssue


class GraphValidationError(ValueError):
    """A graph has errors. ``str()`` lists every error, one per line."""

    def __init__(self, issues: Sequence[ValidationIssue], graph_name: str = "") -> None:
        self.issues: list[ValidationIssue] = list(issues)
        self.errors: list[ValidationIssue] = [i for i in self.issues if i.is_error]
        self.warnings: list[ValidationIssue] = [i for i in self.issues if not i.is_error]
        self.graph_name = graph_name
        count = len(self.errors)
        subject = f"graph '{graph_name}'" if graph_name else "graph"
        header = f"{subject} has {count} error{'s' if count != 1 else ''}:"
        super().__init__("\n".join([header, *(f"  {issue}" for issue in self.errors)]))


def validate_graph(spec: GraphSpec) -> list[ValidationIssue]:
    """Every problem of ``spec``: errors first, then warnings, each in graph order.

    Runs in time linear in nodes + edges and leaves ``spec`` untouched.
    """
    issues = list(_Checker(spec).run())
    return [i for i in issues if i.is_error] + [i for i in issues if not i.is_error]


def check_graph(spec: GraphSpec) -> list[ValidationIssue]:
    """Raise `GraphValidationError` if ``spec`` has any error; else return its warnings."""
    issues = validate_graph(spec)
    if any(issue.is_error for issue in issues):
        raise GraphValidationError(issues, spec.name)
    return issues


def _error(
    code: str, message: str, node: UUID | None = None, edge: UUID | None = None
) -> ValidationIssue:
    assert ISSUE_CODES[code] == "error"
    return ValidationIssue(code, message, "error", node, edge)


def _warning(
    code: str, message: str, node: UUID | None = None, edge: UUID | None = None
) -> ValidationIssue:
    assert ISSUE_CODES[code] == "warning"
    return ValidationIssue(code, message, "warning", node, edge)


class _Checker:
    """One validation run. Lookups are built here rather than through the spec's
    own index so that validating never changes the spec (not even its caches)."""

    def __init__(self, spec: GraphSpec) -> None:
        self.spec = spec
        self.nodes: dict[UUID, GraphNode] = {}
        for node in spec.nodes:
            self.nodes.setdefault(node.id, node)
        self.edges_from: dict[UUID, list[GraphEdge]] = {}
        for edge in spec.edges:
            self.edges_from.setdefault(edge.source_id, []).append(edge)
        self.start = self.nodes.get(spec.start_node_id)

    def run(self) -> Iterator[ValidationIssue]:
        yield from self.check_start()
        yield from self.check_nodes()
        yield from self.check_edges()
        yield from self.check_branching()
        yield from self.check_timeout_edges()
        yield from self.check_maps()
        yield from self.check_reachability()

    # -- naming -------------------------------------------------------------

    def endpoint(self, node_id: UUID) -> str:
        node = self.nodes.get(node_id)
        if node is None:
            return "?"
        return f"'{node.name}'" if node.name else node.type_name

    def describe_edge(self, edge: GraphEdge) -> str:
        arrow = f"-[{edge.label}]->" if edge.label else "->"
        source, target = self.endpoint(edge.source_id), self.endpoint(edge.target_id)
        return f"edge {source} {arrow} {target} (id {edge.id})"

    # -- checks -------------------------------------------------------------

    def check_start(self) -> Iterator[ValidationIssue]:
        if not any(node.type_name == _START for node in self.spec.nodes):
            yield _error("no_start", "the graph has no Start1 node")
        start_id = self.spec.start_node_id
        if self.start is None:
            yield _error("invalid_start_id", f"start_node_id {start_id} names no node of the graph")
        elif self.start.type_name != _START:
            yield _error(
                "start_id_not_start_type",
                f"the start node {self.start.describe()} has type {self.start.type_name}, "
                "not Start1",
                start_id,
            )

    def check_nodes(self) -> Iterator[ValidationIssue]:
        starts = [n for n in self.spec.nodes if n.type_name == _START]
        # The designated start node is the one to keep; every other Start1 is extra.
        start_ok = self.start is not None and self.start.type_name == _START
        kept = self.start if start_ok else next(iter(starts), None)
        for node in starts:
            if kept is not None and node is not kept:
                yield _error(
                    "multiple_starts",
                    f"{node.describe()} is a second Start1 node; the graph starts at "
                    f"{kept.describe()} and may have only one",
                    node.id,
                )
        named: dict[str, GraphNode] = {}
        captured: dict[str, GraphNode] = {}
        for node in self.spec.nodes:
            yield from self.check_capture(node, captured)
            first = self.nodes[node.id]
            if first is not node:
                yield _error(
                    "duplicate-node-id",
                    f"{node.describe()} has the same id as {first.describe()}",
                    node.id,
                )
            # End nodes may share a name: the builder gives each branch its own "End".
            if node.name and node.type_name != _END:
                earlier = named.setdefault(node.name, node)
                if earlier is not node:
                    yield _warning(
                        "duplicate-node-name",
                        f"{node.describe()} has the same name as {earlier.describe()}",
                        node.id,
                    )

    def check_capture(
        self, node: GraphNode, captured: dict[str, GraphNode]
    ) -> Iterator[ValidationIssue]:
        if CAPTURE_AS not in node.metadata:
            return
        name = node.metadata[CAPTURE_AS]
        if not isinstance(name, str) or not name:
            yield _error(
                "capture-name-invalid",
                f"{node.describe()} has capture_as {name!r}; it must be a non-empty string",
                node.id,
            )
            return
        earlier = captured.setdefault(name, node)
        if earlier is not node:
            yield _error(
                "duplicate-capture-name",
                f"{node.describe()} is captured as '{name}', as {earlier.describe()} is; "
                "capture names must be distinct",
                node.id,
            )

    def check_edges(self) -> Iterator[ValidationIssue]:
        seen: dict[UUID, GraphEdge] = {}
        for edge in self.spec.edges:
            first = seen.setdefault(edge.id, edge)
            if first is not edge:
                yield _error(
                    "duplicate-edge-id",
                    f"{self.describe_edge(edge)} has the same id as {self.describe_edge(first)}",
                    edge=edge.id,
                )
            if edge.source_id not in self.nodes:
                yield _error(
                    "invalid_edge_source",
                    f"{self.describe_edge(edge)} starts at missing node {edge.source_id}",
                    edge=edge.id,
                )
            if edge.target_id not in self.nodes:
                yield _error(
                    "invalid_edge_target",
                    f"{self.describe_edge(edge)} targets missing node {edge.target_id}",
                    edge=edge.id,
                )

    def check_branching(self) -> Iterator[ValidationIssue]:
        for node in self.nodes.values():
            picks = node.traverse_out is TraverseOut.SPAWN_PICKED
            if node.type_name in BRANCHING_TYPES and not picks:
                yield _warning(
                    "branching-node-spawns-all",
                    f"{node.describe()} is a {node.type_name} node but its traverse_out is "
                    f"{node.traverse_out.value}, so every outgoing branch runs; "
                    "use SpawnPickedNode to run only the picked one",
                    node.id,
                )
            if not picks:
                continue
            edges = self.edges_from.get(node.id, [])
            yield from self.check_picks(node, edges)
            if len(edges) < 2:
                yield _warning(
                    "picked-too-few-edges",
                    f"{node.describe()} picks one of its successors but has "
                    f"{len(edges)} outgoing edge{'s' if len(edges) != 1 else ''}",
                    node.id,
                )

    def check_timeout_edges(self) -> Iterator[ValidationIssue]:
        """A wait's ``on_timeout_edge`` names one of its outgoing edges' labels, with a
        ``timeout`` and without ``on_timeout``, on a node that passes on to all."""
        for node in self.nodes.values():
            late = node.metadata.get("on_timeout_edge")
            if late is None:
                continue
            problem = ""
            labels = sorted({e.label for e in self.edges_from.get(node.id, []) if e.label})
            if not isinstance(late, str) or not late:
                problem = f"on_timeout_edge must be an edge label, got {late!r}"
            elif "timeout" not in node.metadata:
                problem = f"on_timeout_edge {late!r} needs a timeout"
            elif "on_timeout" in node.metadata:
                problem = "give on_timeout (an answer) or on_timeout_edge (an edge), not both"
            elif node.traverse_out is not TraverseOut.SPAWN_ALL:
                problem = (
                    f"on_timeout_edge {late!r} needs traverse_out SpawnAll, not "
                    f"{node.traverse_out.value}"
                )
            elif late not in labels:
                known = ", ".join(repr(lb) for lb in labels) or "none"
                problem = (
                    f"on_timeout_edge {late!r} is the label of none of its outgoing edges "
                    f"(their labels: {known})"
                )
            if problem:
                yield _error("on-timeout-edge-invalid", f"{node.describe()}: {problem}", node.id)

    def answer(self, edge: GraphEdge) -> str | None:
        """What picks an unlabeled edge: its target's name, else the target's id."""
        target = self.nodes.get(edge.target_id)
        if target is None:
            return None  # invalid_edge_target reports it
        return target.name or str(target.id)

    def check_picks(self, node: GraphNode, edges: list[GraphEdge]) -> Iterator[ValidationIssue]:
        """Every outgoing edge of a picking node must be the one some answer selects.

        The runner matches an answer against edge labels, then target names, then
        target ids, so an unlabeled edge is picked by its target's name (or id). It
        is ambiguous when that name is another edge's label or another target's name.
        """
        by_label: dict[str, GraphEdge] = {}
        by_answer: dict[str, list[GraphEdge]] = {}
        for edge in edges:
            answer = self.answer(edge)
            if answer is not None:
                by_answer.setdefault(answer, []).append(edge)
            if not edge.label:
                continue
            first = by_label.setdefault(edge.label, edge)
            if first is not edge:
                yield _error(
                    "picked-edge-duplicate-label",
                    f"{self.describe_edge(edge)} has the same label '{edge.label}' as "
                    f"{self.describe_edge(first)}; labels of {node.describe()} must be distinct",
                    node.id,
                    edge.id,
                )
        for edge in edges:
            answer = self.answer(edge)
            if edge.label or answer is None:
                continue
            kind = _kind(self.nodes[edge.target_id])
            labelled = by_label.get(answer)
            rival = labelled if labelled is not None else _rival(by_answer[answer], edge)
            if rival is None:
                continue
            clash = (
                f"that is the label of {self.describe_edge(rival)}"
                if rival is labelled
                else f"that is also the {kind} of the target of {self.describe_edge(rival)}"
            )
            yield _error(
                "picked-edge-ambiguous",
                f"{self.describe_edge(edge)} has no label, so {node.describe()} would pick "
                f"it by its target's {kind} '{answer}', but {clash}; label the edges",
                node.id,
                edge.id,
            )

    def check_maps(self) -> Iterator[ValidationIssue]:
        """Each Map1 names one node that only it runs: no edges, not a control node."""
        mapped: dict[UUID, GraphNode] = {}
        touched = {e.source_id for e in self.spec.edges} | {e.target_id for e in self.spec.edges}
        for node in self.spec.nodes:
            if node.type_name != _MAP:
                continue
            ref = node.metadata.get("node")
            item = map_item_node(self.spec, ref)
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
                yield _error("map-node-invalid", f"{node.describe()} {problem}", node.id)

    def check_reachability(self) -> Iterator[ValidationIssue]:
        if self.start is None:
            return
        reached = {self.start.id}
        queue = deque([self.start.id])
        while queue:
            node_id = queue.popleft()
            for edge in self.edges_from.get(node_id, ()):
                if edge.target_id in self.nodes and edge.target_id not in reached:
                    reached.add(edge.target_id)
                    queue.append(edge.target_id)
            node = self.nodes[node_id]
            if node.type_name == _MAP:  # a map reaches the node it runs
                item = map_item_node(self.spec, node.metadata.get("node"))
                if item is not None:
                    reached.add(item.id)
        for node in self.nodes.values():
            if node.id not in reached and node.type_name not in _DETACHED_TYPES:
                yield _warning(
                    "orphan_node",
                    f"{node.describe()} is not reachable from the start node "
                    f"{self.start.describe()}",
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


def _kind(target: GraphNode) -> str:
    return "name" if target.name else "id"


def _rival(same: list[GraphEdge], edge: GraphEdge) -> GraphEdge | None:
    """Another edge of ``same`` (edges picked by one answer) that makes the unlabeled
    ``edge`` ambiguous: an earlier one, or a labelled one (so that a pair of unlabeled
    edges is reported once, at the second)."""
    before = True
    for other in same:
        if other is edge:
            before = False
        elif before or other.label:
            return other
    return None
