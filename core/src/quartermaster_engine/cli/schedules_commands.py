"""``qm schedules``: add, list and remove the schedules of a durable store
(graphs started on a cron expression by ``qm serve``, ``qm worker`` or any
engine keeping the clock; docs/time.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click

from quartermaster_engine._sync import run_sync
from quartermaster_engine.cli.common import (
    config_option,
    echo_json,
    fail,
    guarded,
    json_option,
    load_config,
    load_graph_file,
    reported,
)
from quartermaster_engine.runner.engine import Engine
from quartermaster_engine.schedules.model import MISSED_POLICIES, Schedule, ScheduleError
from quartermaster_engine.stores.memory_store import InMemoryStore


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@contextmanager
def _engine(config_path: str | None) -> Iterator[Engine]:
    """The configured engine; its store must keep schedules across processes."""
    config = load_config(config_path)
    engine = guarded(Engine.from_config, config)
    try:
        if not engine.store_adapter.durable or isinstance(engine.store, InMemoryStore):
            fail(
                f"the configured store ({config.store.name}) keeps nothing across "
                "processes: schedules need a durable store"
            )
        with reported():
            try:
                yield engine
            except (ScheduleError, TypeError) as exc:
                fail(str(exc))
    finally:
        engine.close()


def _line(schedule: Schedule) -> str:
    return (
        f"{schedule.name}  {schedule.graph.name}  cron '{schedule.cron}' ({schedule.tz})  "
        f"missed: {schedule.missed}  next: {_when(schedule.next_tick)}"
    )


def _as_dict(schedule: Schedule) -> dict[str, Any]:
    return {
        "name": schedule.name,
        "graph": schedule.graph.name,
        "cron": schedule.cron,
        "tz": schedule.tz,
        "input": schedule.input,
        "missed": schedule.missed,
        "next_tick": schedule.next_tick,
        "next_tick_iso": datetime.fromtimestamp(schedule.next_tick, UTC).isoformat(),
    }


@click.group("schedules")
def schedules_group() -> None:
    """Graphs started on a cron expression by whoever keeps the clock."""


@schedules_group.command("add")
@click.argument("name")
@click.argument("graph", type=click.Path(dir_okay=False))
@click.option("--cron", required=True, help="Cron expression: 5 fields, or 6 with seconds last.")
@click.option("--input", "-i", "input_text", default="", help="The input of each flow.")
@click.option("--tz", default="UTC", show_default=True, help="IANA time zone of the cron.")
@click.option(
    "--missed",
    type=click.Choice(MISSED_POLICIES),
    default="run-once",
    show_default=True,
    help="Ticks that passed while no clock ran: start one flow for them, or none.",
)
@config_option
@json_option
def add_command(
    name: str,
    graph: str,
    cron: str,
    input_text: str,
    tz: str,
    missed: str,
    config_path: str | None,
    as_json: bool,
) -> None:
    """Add schedule NAME: start GRAPH (a graph file, stored as a snapshot) at each tick."""
    spec = load_graph_file(graph)
    with _engine(config_path) as engine:
        added = run_sync(
            engine.schedules.add(name, spec, cron, input=input_text, tz=tz, missed=missed)
        )
    if as_json:
        echo_json(_as_dict(added))
    else:
        click.echo(f"added schedule {_line(added)}")


@schedules_group.command("list")
@config_option
@json_option
def list_command(config_path: str | None, as_json: bool) -> None:
    """List the schedules, by name, with their next tick."""
    with _engine(config_path) as engine:
        found = run_sync(engine.schedules.list())
    if as_json:
        echo_json({"schedules": [_as_dict(s) for s in found]})
    elif not found:
        click.echo("no schedules")
    else:
        for schedule in found:
            click.echo(_line(schedule))


@schedules_group.command("remove")
@click.argument("name")
@config_option
def remove_command(name: str, config_path: str | None) -> None:
    """Remove schedule NAME (flows it started are kept)."""
    with _engine(config_path) as engine:
        removed = run_sync(engine.schedules.remove(name))
    if not removed:
        fail(f"no schedule named {name!r}")
    click.echo(f"removed schedule {name}")
