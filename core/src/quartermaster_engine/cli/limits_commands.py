"""``qm limits``: each limited key, its limit and the slots held now (docs/limits.md)."""

from __future__ import annotations

import re
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
from quartermaster_engine.runner.key_limits import KeyLimits, Rule
from quartermaster_engine.stores.adapter import StoreAdapter, _done
from quartermaster_engine.stores.base import HoldsSlots, LimitsRate

_PATTERN = re.compile(r"[*?\[]")


def limit_rows(tables: dict[str, Rule], in_use: dict[str, int]) -> list[dict[str, Any]]:
    """A row per key with slots held (its rule from its own table or the first
    pattern matching it), then a row per table no held key falls under."""
    limits = KeyLimits(tables, None, 1.0)
    rows: list[dict[str, Any]] = []
    used_tables: set[str] = set()

    def row(key: str, table: str | None, held: int) -> dict[str, Any]:
        rule = None if table is None else tables[table]
        return {
            "key": key,
            "limit": None if rule is None else rule.max_in_flight,
            "max_requests": None if rule is None else rule.max_requests,
            "per": None if rule is None or rule.max_requests is None else rule.per,
            "table": table,
            "in_flight": held,
        }

    for key, held in sorted(in_use.items()):
        table = key if key in tables else next((p for p in tables if limits.matches(p, key)), None)
        if table is not None:
            used_tables.add(table)
        rows.append(row(key, table, held))
    for table in tables:
        if table not in used_tables:
            rows.append(row(table, table, 0))
    return rows


async def _started(store: Any, rows: list[dict[str, Any]]) -> None:
    """Each concrete key's starts in its window (``started``; None for patterns)."""
    rates = store if isinstance(store, LimitsRate) else None
    now = time.time()
    for item in rows:
        item["started"] = None
        if rates is not None and item["per"] is not None and not _PATTERN.search(item["key"]):
            count = await _done(rates.requests_in_window(item["key"], item["per"], now))
            item["started"] = int(count)


@click.command("limits")
@config_option
@json_option
def limits_command(config_path: str | None, as_json: bool) -> None:
    """Each key limited by a [limits."<key>"] table: its max_in_flight and
    max_requests, the slots held now and the starts in its window, read from the
    store every process shares (a store that keeps none, like memory, has them in
    each process: none are seen from here). A pattern's limits hold for each key
    it matches."""
    config = load_config(config_path)
    tables = {
        k: Rule(v.max_in_flight, v.max_requests, v.per) for k, v in config.limits.keys.items()
    }
    with reported():
        store = assembly.build_store(config)
    adapter = StoreAdapter(store)
    try:
        shared = isinstance(store, HoldsSlots)
        in_use: dict[str, int] = {}
        if shared:
            with reported():
                in_use = run_sync(_done(store.slots_in_use(time.time())))
        rows = limit_rows(tables, in_use)
        with reported():
            run_sync(_started(store, rows))
    finally:
        run_sync(adapter.close())
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
    for column in ("key", "max in flight", "max requests", "from", "in flight", "started"):
        table.add_column(column)
    for row in rows:
        per = "" if row["per"] is None else f" / {row['per']:g} s"
        table.add_row(
            terminal_text(row["key"]),
            _dash(row["limit"]),
            "-" if row["max_requests"] is None else f"{row['max_requests']}{per}",
            "-" if row["table"] is None else terminal_text(row["table"]),
            str(row["in_flight"]),
            _dash(row["started"]),
        )
    table_console().print(table)


def _dash(value: object) -> str:
    return "-" if value is None else str(value)
