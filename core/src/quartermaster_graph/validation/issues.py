"""Validation issues: their codes and severities, `ValidationIssue`, and
`GraphValidationError` listing a graph's errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

Severity = Literal["error", "warning"]

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


def error(
    code: str, message: str, node: UUID | None = None, edge: UUID | None = None
) -> ValidationIssue:
    """An error issue; ``code`` must be an error code of `ISSUE_CODES`."""
    assert ISSUE_CODES[code] == "error"
    return ValidationIssue(code, message, "error", node, edge)


def warning(
    code: str, message: str, node: UUID | None = None, edge: UUID | None = None
) -> ValidationIssue:
    """A warning issue; ``code`` must be a warning code of `ISSUE_CODES`."""
    assert ISSUE_CODES[code] == "warning"
    return ValidationIssue(code, message, "warning", node, edge)
