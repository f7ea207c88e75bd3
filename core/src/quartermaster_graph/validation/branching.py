"""The checks of which outgoing edges run: nodes that pick one successor (their
edges must each be the pick of some answer) and waits whose timeout takes an edge."""

from __future__ import annotations

from collections.abc import Iterator

from quartermaster_graph.enums import NodeType, TraverseOut
from quartermaster_graph.models import GraphEdge, GraphNode
from quartermaster_graph.validation.graph_index import GraphIndex
from quartermaster_graph.validation.issues import ValidationIssue, error, warning

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


def check_branching(ix: GraphIndex) -> Iterator[ValidationIssue]:
    """Branching nodes pick one successor, and picking nodes have edges to pick
    among, each the pick of some answer."""
    for node in ix.nodes.values():
        picks = node.traverse_out is TraverseOut.SPAWN_PICKED
        if node.type_name in BRANCHING_TYPES and not picks:
            yield warning(
                "branching-node-spawns-all",
                f"{node.describe()} is a {node.type_name} node but its traverse_out is "
                f"{node.traverse_out.value}, so every outgoing branch runs; "
                "use SpawnPickedNode to run only the picked one",
                node.id,
            )
        if not picks:
            continue
        edges = ix.edges_from.get(node.id, [])
        yield from _check_picks(ix, node, edges)
        if len(edges) < 2:
            yield warning(
                "picked-too-few-edges",
                f"{node.describe()} picks one of its successors but has "
                f"{len(edges)} outgoing edge{'s' if len(edges) != 1 else ''}",
                node.id,
            )


def check_timeout_edges(ix: GraphIndex) -> Iterator[ValidationIssue]:
    """A wait's ``on_timeout_edge`` names one of its outgoing edges' labels, with a
    ``timeout`` and without ``on_timeout``, on a node that passes on to all."""
    for node in ix.nodes.values():
        late = node.metadata.get("on_timeout_edge")
        if late is None:
            continue
        problem = ""
        labels = sorted({e.label for e in ix.edges_from.get(node.id, []) if e.label})
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
            yield error("on-timeout-edge-invalid", f"{node.describe()}: {problem}", node.id)


def _answer(ix: GraphIndex, edge: GraphEdge) -> str | None:
    """What picks an unlabeled edge: its target's name, else the target's id."""
    target = ix.nodes.get(edge.target_id)
    if target is None:
        return None  # invalid_edge_target reports it
    return target.name or str(target.id)


def _check_picks(
    ix: GraphIndex, node: GraphNode, edges: list[GraphEdge]
) -> Iterator[ValidationIssue]:
    """Every outgoing edge of a picking node must be the one some answer selects.

    The runner matches an answer against edge labels, then target names, then
    target ids, so an unlabeled edge is picked by its target's name (or id). It
    is ambiguous when that name is another edge's label or another target's name.
    """
    by_label: dict[str, GraphEdge] = {}
    by_answer: dict[str, list[GraphEdge]] = {}
    for edge in edges:
        answer = _answer(ix, edge)
        if answer is not None:
            by_answer.setdefault(answer, []).append(edge)
        if not edge.label:
            continue
        first = by_label.setdefault(edge.label, edge)
        if first is not edge:
            yield error(
                "picked-edge-duplicate-label",
                f"{ix.describe_edge(edge)} has the same label '{edge.label}' as "
                f"{ix.describe_edge(first)}; labels of {node.describe()} must be distinct",
                node.id,
                edge.id,
            )
    for edge in edges:
        answer = _answer(ix, edge)
        if edge.label or answer is None:
            continue
        kind = _kind(ix.nodes[edge.target_id])
        labelled = by_label.get(answer)
        rival = labelled if labelled is not None else _rival(by_answer[answer], edge)
        if rival is None:
            continue
        clash = (
            f"that is the label of {ix.describe_edge(rival)}"
            if rival is labelled
            else f"that is also the {kind} of the target of {ix.describe_edge(rival)}"
        )
        yield error(
            "picked-edge-ambiguous",
            f"{ix.describe_edge(edge)} has no label, so {node.describe()} would pick "
            f"it by its target's {kind} '{answer}', but {clash}; label the edges",
            node.id,
            edge.id,
        )


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
