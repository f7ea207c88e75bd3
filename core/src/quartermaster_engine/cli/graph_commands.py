"""``qm validate`` and ``qm show``: check and print graph files."""

from __future__ import annotations

import json
from typing import Any

import click

from quartermaster_graph.enums import ErrorStrategy, TraverseIn, TraverseOut
from quartermaster_graph.files import GraphFileError, load_graph
from quartermaster_graph.models import GraphEdge, GraphNode, GraphSpec
from quartermaster_graph.validation import validate_graph

# LLM settings worth showing; the other llm_* keys are tuning most graphs leave alone.
_SHOWN_LLM_KEYS = ("llm_model", "llm_provider")
_VALUE_WIDTH = 100


def _load(path: str) -> GraphSpec:
    """The graph in ``path``; a bad file ends the command with its problems, exit 1."""
    try:
        return load_graph(path)
    except GraphFileError as exc:
        click.echo(str(exc), err=True)
        raise click.exceptions.Exit(1) from None


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@click.command("validate")
@click.argument("graph", type=click.Path(dir_okay=False))
def validate_command(graph: str) -> None:
    """Check GRAPH (YAML or JSON) and print every problem found.

    Exit status 1 if the file cannot be read or the graph has errors; warnings
    alone exit 0.
    """
    spec = _load(graph)
    issues = validate_graph(spec)
    for issue in issues:
        click.echo(str(issue))
    errors = sum(issue.is_error for issue in issues)
    warnings = len(issues) - errors
    size = f"{_plural(len(spec.nodes), 'node')}, {_plural(len(spec.edges), 'edge')}"
    verdict = "invalid" if errors else "valid"
    click.echo(
        f"{graph}: {verdict}: {_plural(errors, 'error')}, {_plural(warnings, 'warning')} ({size})"
    )
    if errors:
        raise click.exceptions.Exit(1)


@click.command("show")
@click.argument("graph", type=click.Path(dir_okay=False))
def show_command(graph: str) -> None:
    """Print the nodes and edges of GRAPH."""
    spec = _load(graph)
    for line in describe_graph(spec):
        click.echo(line)


def describe_graph(spec: GraphSpec) -> list[str]:
    """The graph as readable lines: name, start, nodes with key settings, edges."""
    names = {node.id: node.name or node.type_name for node in reversed(spec.nodes)}
    start = names.get(spec.start_node_id, f"? (missing node {spec.start_node_id})")
    lines = [f"graph '{spec.name}'" if spec.name else f"graph {spec.id}", f"start: {start}", ""]
    lines.append(f"nodes ({len(spec.nodes)}):")
    name_width = max((len(names[node.id]) for node in spec.nodes), default=0)
    for node in spec.nodes:
        flags = _flags(node)
        row = f"  {names[node.id]:<{name_width}}  {node.type_name}"
        lines.append(f"{row}  ({'; '.join(flags)})" if flags else row)
        lines += [f"      {detail}" for detail in _details(node)]
    lines += ["", f"edges ({len(spec.edges)}):"]
    lines += [f"  {_edge(edge, names)}" for edge in spec.edges]
    return lines


def _edge(edge: GraphEdge, names: dict[Any, str]) -> str:
    source = names.get(edge.source_id, f"? (missing node {edge.source_id})")
    target = names.get(edge.target_id, f"? (missing node {edge.target_id})")
    arrow = f"-[{edge.label}]->" if edge.label else "->"
    return f"{source} {arrow} {target}"


_TRAVERSE_OUT = {
    TraverseOut.SPAWN_PICKED: "picks one branch",
    TraverseOut.SPAWN_NONE: "stops",
    TraverseOut.SPAWN_START: "restarts from the start",
}


def _flags(node: GraphNode) -> list[str]:
    """How the node joins, branches and fails, where that differs from the usual."""
    flags: list[str] = []
    if node.traverse_in is TraverseIn.AWAIT_ALL:
        flags.append("waits for all inputs")
    if node.traverse_out in _TRAVERSE_OUT:
        flags.append(_TRAVERSE_OUT[node.traverse_out])
    if node.error_handling is ErrorStrategy.RETRY:
        flags.append(f"on error: retry {node.max_retries}x after {node.retry_delay}s")
    elif node.error_handling is not ErrorStrategy.STOP:
        flags.append(f"on error: {node.error_handling.value.lower()}")
    if node.timeout is not None:
        flags.append(f"timeout {node.timeout}s")
    return flags


def _details(node: GraphNode) -> list[str]:
    """The node's non-empty metadata, one setting a line (LLM tuning aside)."""
    details: list[str] = []
    for key, value in node.metadata.items():
        if (key.startswith("llm_") and key not in _SHOWN_LLM_KEYS) or value in ("", None, [], {}):
            continue
        if key == "cases" and isinstance(value, list):
            details += [_case(case) for case in value]
        else:
            details.append(f"{key}: {_compact(value)}")
    return details


def _case(case: Any) -> str:
    if isinstance(case, dict):
        return f"case {case.get('label', '?')}: {_compact(case.get('expression', ''))}"
    return f"case {_compact(case)}"


def _compact(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= _VALUE_WIDTH else text[: _VALUE_WIDTH - 3] + "..."
