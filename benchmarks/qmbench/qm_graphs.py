"""Graph builders for both Quartermaster engines (ours and 0.1.5).

Both versions import the same names from ``quartermaster_graph`` (``GraphSpec``,
``GraphNode``, ``GraphEdge``, ``NodeType``, ``TraverseIn``), so one builder
gives both engines the very same graph. No-op nodes are ``Instruction1`` and
the join ``StaticMerge1``: types neither engine runs itself (0.1.5 runs
Start1, End1 and Merge1 internally), so both hand them to the benchmark's
registry.
"""

from __future__ import annotations

import itertools
from uuid import uuid4

from qmbench.checks import JOIN, branch_names, chain_names
from quartermaster_graph import GraphEdge, GraphNode, GraphSpec, NodeType, TraverseIn

NOOP_TYPE = NodeType.INSTRUCTION.value
JOIN_TYPE = NodeType.STATIC_MERGE.value


def _spec(nodes: list[GraphNode], edges: list[tuple[GraphNode, GraphNode]]) -> GraphSpec:
    return GraphSpec(
        agent_id=uuid4(),
        start_node_id=nodes[0].id,
        nodes=nodes,
        edges=[GraphEdge(source_id=a.id, target_id=b.id) for a, b in edges],
    )


def chain(n: int) -> GraphSpec:
    """Start -> n0 -> ... -> n{n-1} -> End."""
    start = GraphNode(type=NodeType.START, name="Start")
    end = GraphNode(type=NodeType.END, name="End")
    line = [start, *(GraphNode(type=NOOP_TYPE, name=name) for name in chain_names(n)), end]
    return _spec(line, list(itertools.pairwise(line)))


def fanout(n: int) -> GraphSpec:
    """Start -> b0 .. b{n-1} -> join (AwaitAll) -> End."""
    start = GraphNode(type=NodeType.START, name="Start")
    branches = [GraphNode(type=NOOP_TYPE, name=name) for name in branch_names(n)]
    join = GraphNode(type=JOIN_TYPE, name=JOIN, traverse_in=TraverseIn.AWAIT_ALL)
    end = GraphNode(type=NodeType.END, name="End")
    edges = [(start, b) for b in branches] + [(b, join) for b in branches] + [(join, end)]
    return _spec([start, *branches, join, end], edges)
