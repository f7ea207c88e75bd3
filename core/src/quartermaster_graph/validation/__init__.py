"""Graph validation: every structural problem of a graph, found in one linear pass.

`validate_graph` returns all problems (errors and warnings); `check_graph` raises
`GraphValidationError` listing every error at once. Cycles are allowed: loops are
a feature of agent graphs, so they are never reported. A graph without an End node
is valid too (a flow ends when no work is left; its ``final_output`` is then "").

The parts: `issues` (codes, `ValidationIssue`, `GraphValidationError`),
`graph_index` (the lookups of a run), `structure` (start, nodes, edges, maps,
reachability), `branching` (picking nodes, timeout edges). Import from
`quartermaster_graph.validation` (or `quartermaster_graph`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from quartermaster_graph.models import GraphSpec
from quartermaster_graph.validation.branching import (
    BRANCHING_TYPES,
    check_branching,
    check_timeout_edges,
)
from quartermaster_graph.validation.graph_index import GraphIndex
from quartermaster_graph.validation.issues import (
    ISSUE_CODES,
    GraphValidationError,
    Severity,
    ValidationError,
    ValidationIssue,
)
from quartermaster_graph.validation.structure import (
    check_edges,
    check_maps,
    check_nodes,
    check_reachability,
    check_start,
    map_item_node,
)

__all__ = [
    "BRANCHING_TYPES",
    "ISSUE_CODES",
    "GraphValidationError",
    "Severity",
    "ValidationError",
    "ValidationIssue",
    "check_graph",
    "map_item_node",
    "validate_graph",
]

#: The checks of a run, in the order their issues are listed.
_CHECKS: tuple[Callable[[GraphIndex], Iterator[ValidationIssue]], ...] = (
    check_start,
    check_nodes,
    check_edges,
    check_branching,
    check_timeout_edges,
    check_maps,
    check_reachability,
)


def validate_graph(spec: GraphSpec) -> list[ValidationIssue]:
    """Every problem of ``spec``: errors first, then warnings, each in graph order.

    Runs in time linear in nodes + edges and leaves ``spec`` untouched.
    """
    ix = GraphIndex(spec)
    issues = [issue for check in _CHECKS for issue in check(ix)]
    return [i for i in issues if i.is_error] + [i for i in issues if not i.is_error]


def check_graph(spec: GraphSpec) -> list[ValidationIssue]:
    """Raise `GraphValidationError` if ``spec`` has any error; else return its warnings."""
    issues = validate_graph(spec)
    if any(issue.is_error for issue in issues):
        raise GraphValidationError(issues, spec.name)
    return issues
