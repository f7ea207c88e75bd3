"""``qm flows history``: a flow's checkpoints, one per commit (see docs/history.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
from rich.console import Console
from rich.table import Table

from quartermaster_engine._sync import run_sync
from quartermaster_engine.cli.common import (
    config_option,
    echo_json,
    guarded,
    json_option,
    load_config,
    reported,
)
from quartermaster_engine.cli.flow_ids import flow_id_argument, resolve_flow_id
from quartermaster_engine.history import Checkpoint
from quartermaster_engine.runner import Engine

#: Memory shown in a table cell is cut to this many characters (``--json`` has all).
_MEMORY_WIDTH = 60


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S.%f")[:-3]


def _memory_text(checkpoint: Checkpoint) -> str:
    text = json.dumps(dict(checkpoint.memory), ensure_ascii=False, default=str)
    return text if len(text) <= _MEMORY_WIDTH else text[: _MEMORY_WIDTH - 1] + "…"


@click.command("history")
@flow_id_argument
@config_option
@json_option
def history_command(flow_id: str, config_path: str | None, as_json: bool) -> None:
    """A flow's checkpoints, one per commit: node, visit, attempt, outcome, and the
    memory and messages after it (all of them with --json). FLOW_ID is the id or a
    unique prefix of it."""
    config = load_config(config_path)
    with guarded(Engine.from_config, config) as engine, reported():
        fid = resolve_flow_id(engine.store_adapter, flow_id, config.store.name)
        history = run_sync(engine.history(fid))
        lineage = run_sync(engine.lineage(fid))
    if as_json:
        echo_json([c.to_dict() for c in history])
        return
    if lineage is not None:
        click.echo(f"forked from flow {lineage[0]} at checkpoint {lineage[1]}")
    table = Table(title=f"flow {fid}: {len(history)} checkpoints")
    for column in ("#", "node", "visit", "attempt", "outcome", "time (UTC)", "memory", "messages"):
        table.add_column(column)
    for c in history:
        table.add_row(
            str(c.seq),
            c.node_name,
            str(c.visit) if c.visit else "",
            str(c.attempt) if c.attempt else "",
            f"{c.outcome} (reused)" if c.reused else c.outcome,
            _when(c.time),
            _memory_text(c),
            str(len(c.log)),
        )
    Console(soft_wrap=False).print(table)


__all__ = ["history_command"]
