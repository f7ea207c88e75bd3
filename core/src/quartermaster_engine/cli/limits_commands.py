"""``qm limits``: each limited key, its limit and the slots held now (docs/limits.md)."""

from __future__ import annotations

import time
from typing import Any

import click
from rich.table import Table

from quartermaster_engine import assembly
from quartermaster_engine._sync import run_sync
from quartermaster_engine.cli.common import (
    config_option,
    echo_json,
    json_option,
    load_config,
    reported,
    table_console,
    terminal_text,
)
from quartermaster_engine.runner.key_limits import KeyLimits
from quartermaster_engine.stores.adapter import StoreAdapter, _done
from quartermaster_engine.stores.base import HoldsSlots


def limit_rows(tables: dict[str, int], in_use: dict[str, int]) -> list[dict[str, Any]]:
    """A row per key with slots held (its limit from its own table or the first
    pattern matching it), then a row per table no held key falls under."""
    limits = KeyLimits(tables, None, 1.0)
    rows: list[dict[str, Any]] = []
    used_tables: set[str] = set()
    for key, held in sorted(in_use.items()):
        table = key if key in tables else next((p for p in tables if limits.matches(p, key)), None)
        if table is not None:
            used_tables.add(table)
        limit = None if table is None else tables[table]
        rows.append({"key": key, "limit": limit, "table": table, "in_flight": held})
    for table, limit in tables.items():
        if table not in used_tables:
            rows.append({"key": table, "limit": limit, "table": table, "in_flight": 0})
    return rows


@click.command("limits")
@config_option
@json_option
def limits_command(config_path: str | None, as_json: bool) -> None:
    """Each key limited by a [limits."<key>"] table: its max_in_flight and the slots
    held now, read from the store every process shares (a store that keeps no
    slots, like memory, has them in each process: none are seen from here). A
    pattern's limit holds for each key it matches."""
    config = load_config(config_path)
    tables = {k: v.max_in_flight for k, v in config.limits.keys.items()}
    with reported():
        store = assembly.build_store(config)
    adapter = StoreAdapter(store)
    try:
        shared = isinstance(store, HoldsSlots)
        in_use: dict[str, int] = {}
        if shared:
            with reported():
                in_use = run_sync(_done(store.slots_in_use(time.time())))
    finally:
        run_sync(adapter.close())
    rows = limit_rows(tables, in_use)
    if as_json:
        echo_json({"store": config.store.name, "shared": shared, "keys": rows})
        return
    if not shared:
        click.echo(
            f"the {config.store.name} store keeps no slots: each process holds its own, "
            "and none are seen from here"
        )
    if not rows:
        click.echo('no key is limited (add a [limits."<key>"] table with max_in_flight)')
        return
    table = Table()
    for column in ("key", "max in flight", "from", "in flight"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            terminal_text(row["key"]),
            "-" if row["limit"] is None else str(row["limit"]),
            "-" if row["table"] is None else terminal_text(row["table"]),
            str(row["in_flight"]),
        )
    table_console().print(table)
