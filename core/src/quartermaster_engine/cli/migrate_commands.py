"""``qm flows migrate``: move paused or failed flows to a new version of their graph
(see docs/history.md#migration)."""

from __future__ import annotations

import click

from quartermaster_engine._sync import run_sync
from quartermaster_engine.cli.common import (
    EXIT_FAILED,
    config_option,
    echo_json,
    guarded,
    json_option,
    load_config,
    load_graph_file,
    reported,
)
from quartermaster_engine.cli.flow_ids import resolve_flow_id
from quartermaster_engine.history.alignment import mapping_arg
from quartermaster_engine.history.migrate import MOVABLE, MigrationReport
from quartermaster_engine.runner import Engine
from quartermaster_engine.stores.records import FlowRecord
from quartermaster_engine.types import GraphSpec


def _mapping(pairs: tuple[str, ...]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise click.UsageError(f"--map takes OLD=NEW (node names), got {pair!r}")
        mapping[old.strip()] = new.strip()
    return mapping


async def _of_graph(engine: Engine, name: str) -> list[FlowRecord]:
    """The paused and failed flows of the graph named ``name``, oldest first."""
    found: list[FlowRecord] = []
    for status in MOVABLE:
        found += await engine.store_adapter.list_flows(status=status)
    return sorted((r for r in found if r.graph.name == name), key=lambda r: r.created_at)


@click.command("migrate")
@click.argument("flows", nargs=-1, metavar="[FLOW ...]")
@click.option(
    "--to", "graph_file", required=True, metavar="GRAPH_FILE", help="The new graph version."
)
@click.option(
    "--map",
    "pairs",
    multiple=True,
    metavar="OLD=NEW",
    help="The node NEW of the new graph replaces the node OLD. Repeatable.",
)
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing.")
@click.option(
    "--graph",
    "graph_name",
    default=None,
    metavar="NAME",
    help="Every paused or failed flow of the graph named NAME.",
)
@config_option
@json_option
def migrate_command(
    flows: tuple[str, ...],
    graph_file: str,
    pairs: tuple[str, ...],
    dry_run: bool,
    graph_name: str | None,
    config_path: str | None,
    as_json: bool,
) -> None:
    """Move paused (waiting for input or on a timer) or failed flows to a new version
    of their graph: FLOW ids (or unique prefixes), or every such flow of --graph NAME.
    One line per flow: migrated, would migrate (--dry-run), or refused with the
    reason. Exit status 1 if any flow was refused (the others are still moved)."""
    if bool(flows) == (graph_name is not None):
        raise click.UsageError("give FLOW ids or --graph NAME (one of them)")
    mapping = _mapping(pairs)
    to: GraphSpec = load_graph_file(graph_file)
    try:
        mapping_arg(mapping, to)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    config = load_config(config_path)
    reports: list[MigrationReport] = []
    with guarded(Engine.from_config, config) as engine, reported():
        if graph_name is not None:
            ids = [r.flow_id for r in run_sync(_of_graph(engine, graph_name))]
        else:
            ids = [resolve_flow_id(engine.store_adapter, f, config.store.name) for f in flows]
        for fid in ids:
            report = run_sync(engine.migrate(fid, to, mapping, dry_run=dry_run))
            reports.append(report)
            if not as_json:
                click.echo(report.line())
    if as_json:
        echo_json([r.to_dict() for r in reports])
    elif not reports:
        click.echo(f"no paused or failed flow of graph {graph_name!r}")
    if any(r.refused for r in reports):
        raise click.exceptions.Exit(EXIT_FAILED)


__all__ = ["migrate_command"]
