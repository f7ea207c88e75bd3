"""``qm flows``: list, show, delete and prune the flows of a durable store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import click
from rich.table import Table
from rich.text import Text

from quartermaster_engine import assembly
from quartermaster_engine._sync import run_sync
from quartermaster_engine.budgets import flow_usage
from quartermaster_engine.cli.common import (
    config_option,
    echo_json,
    fail,
    json_option,
    load_config,
    reported,
    table_console,
    terminal_text,
)
from quartermaster_engine.cli.flow_ids import (
    flow_id_argument,
    memory_note,
    no_flow,
    resolve_flow_id,
)
from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus
from quartermaster_engine.durations import parse_duration
from quartermaster_engine.events import FlowEvent
from quartermaster_engine.pending_timers import TIMER_VERBS, pending_timers
from quartermaster_engine.runner.event_log import read_log
from quartermaster_engine.stores.adapter import StoreAdapter
from quartermaster_engine.stores.records import (
    FlowRecord,
    FlowSnapshot,
    FlowStatus,
    latest_records,
)


def parse_age(text: str) -> timedelta:
    """``90s``, ``15m``, ``12h``, ``7d``, ``2w``, ``1d12h`` -> timedelta."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


@contextmanager
def _store(config_path: str | None) -> Iterator[tuple[Any, StoreAdapter, str]]:
    """The configured durable store, its adapter and its name; closed after."""
    config = load_config(config_path)
    with reported():
        store = assembly.build_store(config)
    adapter = StoreAdapter(store)
    if not adapter.durable:
        fail(f"the configured store ({config.store.name}) does not keep flow records")
    try:
        yield store, adapter, config.store.name
    finally:
        run_sync(adapter.close())


def _record_counts(
    store: Any, adapter: StoreAdapter, flow_ids: list[UUID]
) -> dict[UUID, dict[str, int]]:
    """Nodes per latest state of each flow (`latest_records`): counted by the store
    when it can (the `CountsRecords` ability), else by loading each flow."""
    counted = run_sync(adapter.record_counts(flow_ids))
    if counted is not None:
        return counted
    counts: dict[UUID, dict[str, int]] = {}
    for flow_id in flow_ids:
        snapshot: FlowSnapshot | None = run_sync(adapter.load_flow(flow_id))
        per_status: dict[str, int] = {}
        for record in latest_records(snapshot.records) if snapshot is not None else ():
            per_status[record.status.value] = per_status.get(record.status.value, 0) + 1
        counts[flow_id] = per_status
    return counts


@click.group("flows")
def flows_group() -> None:
    """Operate the flows of the configured (durable) store."""


@flows_group.command("list")
@config_option
@json_option
@click.option("--status", type=click.Choice([s.value for s in FlowStatus]), default=None)
@click.option("--limit", type=int, default=50, show_default=True)
def list_command(config_path: str | None, as_json: bool, status: str | None, limit: int) -> None:
    """Flows, most recently updated first, with their node counts."""
    with _store(config_path) as (store, adapter, _), reported():
        records: list[FlowRecord] = run_sync(
            adapter.list_flows(status=FlowStatus(status) if status else None, limit=limit)
        )
        all_counts = _record_counts(store, adapter, [r.flow_id for r in records])
        note = memory_note(store)
    if note:
        click.echo(f"note: {note}", err=True)
    rows: list[dict[str, Any]] = []
    for record in records:
        counts = all_counts.get(record.flow_id, {})
        rows.append(
            {
                "flow_id": str(record.flow_id),
                "status": record.status.value,
                "graph": record.graph.name,
                "started": _when(record.created_at),
                "updated": _when(record.updated_at),
                "nodes": sum(counts.values()),
                "by_status": counts,
            }
        )
    if as_json:
        echo_json(rows)
        return
    table = Table(title=f"{len(rows)} flows")
    table.add_column("flow", no_wrap=True, min_width=36)  # whole: `qm` takes it back
    for column in ("status", "graph", "started (UTC)", "updated (UTC)", "nodes"):
        table.add_column(column)
    for row in rows:
        detail = ", ".join(f"{n} {s}" for s, n in row["by_status"].items())
        table.add_row(
            row["flow_id"],
            row["status"],
            row["graph"],
            row["started"],
            row["updated"],
            f"{row['nodes']} ({detail})" if detail else "0",
        )
    table_console().print(table)


def _load(config_path: str | None, flow_id: str) -> tuple[UUID, FlowSnapshot]:
    """The stored flow FLOW_ID (an id or a unique prefix) names."""
    with _store(config_path) as (store, adapter, name), reported():
        fid = resolve_flow_id(adapter, flow_id, name)
        snap: FlowSnapshot | None = run_sync(adapter.load_flow(fid))
        if snap is None:
            fail(no_flow(fid, store))
    return fid, snap


def _record_rows(snap: FlowSnapshot, records: list[NodeExecution]) -> list[dict[str, Any]]:
    names = {n.id: n.name for n in snap.flow.graph.nodes}
    return [
        {
            "node": names.get(r.node_id, str(r.node_id)),
            "visit": r.visit,
            "attempt": r.attempt,
            "status": r.status.value,
            "result": r.result,
            "error": r.error,
        }
        for r in records
    ]


def _print_records(rows: list[dict[str, Any]]) -> None:
    table = Table()
    for column in ("node", "visit", "attempt", "status", "output / error"):
        table.add_column(column)
    for rec in rows:
        text = rec["error"] if rec["status"] == NodeStatus.FAILED.value else rec["result"]
        # Flow text is escaped for the terminal; Text() keeps rich from reading markup.
        table.add_row(
            Text(terminal_text(rec["node"])),
            str(rec["visit"]),
            str(rec["attempt"]),
            rec["status"],
            Text(terminal_text(str(text or ""))),
        )
    table_console().print(table)


@flows_group.command("show")
@flow_id_argument
@config_option
@json_option
def show_command(flow_id: str, config_path: str | None, as_json: bool) -> None:
    """One flow: status, input, output or error, each node's latest state (its
    latest visit and attempt), waiting nodes, timers (a sleep's wake time, a retry's
    next attempt, a wait's deadline). FLOW_ID is the id or a unique prefix
    of it; `qm flows history` lists every state each node went through."""
    fid, snap = _load(config_path, flow_id)
    names = {n.id: n.name for n in snap.flow.graph.nodes}
    data = snap.flow.to_dict(with_graph=False)
    data["graph"] = snap.flow.graph.name
    data["nodes"] = _record_rows(snap, latest_records(snap.records))
    usage = flow_usage(snap.records, load_config(config_path).budgets)
    data["usage"] = usage.to_dict()
    data["waiting"] = [
        {"node": names.get(a.node_id, str(a.node_id)), "prompt": a.prompt, "options": a.options}
        for a in snap.pending
        if a.waiting and a.child_flow is None  # (not a sub-graph node on a fleet)
    ]
    data["timers"] = pending_timers(snap)
    if as_json:
        echo_json(data)
        return
    click.echo(f"flow {fid}  {snap.flow.status.value}  graph {snap.flow.graph.name!r}")
    # Flow text (input, outputs, errors, prompts) is escaped for the terminal.
    show = terminal_text
    click.echo(
        f"started {_when(snap.flow.created_at)} UTC, updated {_when(snap.flow.updated_at)} UTC"
    )
    click.echo(f"input: {show(snap.flow.input)}")
    if snap.flow.final_output is not None:
        click.echo(f"final output: {show(snap.flow.final_output)}")
    if snap.flow.error:
        click.echo(f"error: {show(snap.flow.error)}")
    cost = "" if usage.config is None else f", cost {usage.cost:.6g} {usage.config.currency}"
    click.echo(
        f"usage: {usage.node_runs} node runs, {usage.tokens} tokens "
        f"({usage.input_tokens} in, {usage.output_tokens} out){cost}"
    )
    _print_records(data["nodes"])
    for waiting in data["waiting"]:
        click.echo(f"waiting: {show(waiting['node'])} asks {waiting['prompt']!r}")
    for timer in data["timers"]:
        verb = TIMER_VERBS[timer["kind"]]
        click.echo(f"timer: {show(timer['node'])} {verb} {_when(timer['wakes_at'])} UTC")


@flows_group.command("events")
@flow_id_argument
@config_option
@json_option
@click.option("--after", type=int, default=0, help="Only events numbered above this.")
@click.option("--follow", is_flag=True, help="Keep printing new events until the flow ends.")
def events_command(
    flow_id: str, config_path: str | None, as_json: bool, after: int, follow: bool
) -> None:
    """A flow's event log (every event but tokens), from any process; one JSON
    object a line with --json. FLOW_ID is the id or a unique prefix of it."""

    async def show(fid: UUID) -> None:
        async for event in read_log(adapter, fid, after=after, follow=follow):
            if as_json:
                click.echo(event.to_json())
            else:
                click.echo(describe_event(event))

    with _store(config_path) as (_, adapter, name), reported():
        run_sync(show(resolve_flow_id(adapter, flow_id, name)))


@flows_group.command("delete")
@flow_id_argument
@config_option
def delete_command(flow_id: str, config_path: str | None) -> None:
    """Delete one flow and everything stored for it. FLOW_ID is the id or a unique
    prefix of it."""
    with _store(config_path) as (_, adapter, name), reported():
        fid = resolve_flow_id(adapter, flow_id, name)
        deleted = run_sync(adapter.delete_flow(fid))
    if not deleted:
        fail(f"no flow {fid}")
    click.echo(f"deleted flow {fid}")


@flows_group.command("prune")
@click.option(
    "--older-than",
    "older_than",
    default=None,
    help="Age like 7d, 12h, 30m (default: the store's retention setting).",
)
@config_option
def prune_command(older_than: str | None, config_path: str | None) -> None:
    """Delete ended flows (completed, failed, stopped) last updated before the cut-off.
    Paused and running flows are kept."""
    with _store(config_path) as (store, adapter, _):
        age = parse_age(older_than) if older_than else getattr(store, "retention", None)
        if age is None:
            fail("give --older-than, or set a retention on the store")
        with reported():
            count = run_sync(adapter.prune(age))
    cutoff = _when(time.time() - age.total_seconds())
    click.echo(f"pruned {count} flow{'s' if count != 1 else ''} ended before {cutoff} UTC")


def describe_event(event: FlowEvent) -> str:
    """One line for a person: number, time, type and the event's own fields."""
    data = event.to_dict()
    for key in ("type", "flow_id", "seq", "ts", "parent_flow_id"):
        data.pop(key, None)
    fields = " ".join(f"{k}={v!r}" for k, v in data.items() if v not in (None, "", {}, []))
    stamp = datetime.fromtimestamp(event.ts, UTC).strftime("%H:%M:%S.%f")[:-3]
    return f"{event.seq:>5} {stamp} {event.type} {fields}".rstrip()
