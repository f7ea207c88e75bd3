"""``qm limits``: each limited key, its limit, the slots held now and the activations
waiting for it (docs/limits.md)."""

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
from quartermaster_engine.runner.window_line import by_key
from quartermaster_engine.stores.adapter import StoreAdapter, _done
from quartermaster_engine.stores.base import CountsWaiters, HoldsSlots, LimitsRate, LimitsTokens

_PATTERN = re.compile(r"[*?\[]")


def limit_rows(
    tables: dict[str, Rule], in_use: dict[str, int], waiting: dict[str, int] | None = None
) -> list[dict[str, Any]]:
    """A row per key with slots held or activations waiting (its rule from its own
    table or the first pattern matching it), then a row per table no such key falls
    under."""
    waiting = waiting or {}
    limits = KeyLimits(tables, None, 1.0)
    rows: list[dict[str, Any]] = []
    used_tables: set[str] = set()

    def row(key: str, table: str | None, held: int) -> dict[str, Any]:
        rule = None if table is None else tables[table]
        return {
            "key": key,
            "limit": None if rule is None else rule.max_in_flight,
            "max_requests": None if rule is None else rule.max_requests,
            "max_tokens": None if rule is None else rule.max_tokens,
            "per": None
            if rule is None or (rule.max_requests, rule.max_tokens) == (None, None)
            else rule.per,
            "table": table,
            "in_flight": held,
            "waiting": waiting.get(key, 0),
        }

    for key in sorted(in_use.keys() | waiting.keys()):
        held = in_use.get(key, 0)
        table = key if key in tables else next((p for p in tables if limits.matches(p, key)), None)
        if table is not None:
            used_tables.add(table)
        rows.append(row(key, table, held))
    for table in tables:
        if table not in used_tables:
            rows.append(row(table, table, 0))
    return rows


async def _started(store: Any, rows: list[dict[str, Any]]) -> None:
    """Each concrete key's starts and tokens in its window (``started``, ``tokens``;
    None for patterns and for keys without that limit)."""
    rates = store if isinstance(store, LimitsRate) else None
    tokens = store if isinstance(store, LimitsTokens) else None
    now = time.time()
    for item in rows:
        item["started"] = item["tokens"] = None
        if _PATTERN.search(item["key"]):
            continue
        if rates is not None and item["max_requests"] is not None:
            count = await _done(rates.requests_in_window(item["key"], item["per"], now))
            item["started"] = int(count)
        if tokens is not None and item["max_tokens"] is not None:
            used = await _done(tokens.tokens_in_window(item["key"], item["per"], now))
            item["tokens"] = sum(int(n) for _, n in used)


@click.command("limits")
@config_option
@json_option
def limits_command(config_path: str | None, as_json: bool) -> None:
    """Each key limited by a [limits."<key>"] table: its max_in_flight,
    max_requests and max_tokens, the slots held now, the activations waiting for a
    slot or for room in the window, and the starts and tokens in its window, read
    from the store every process shares (a store that keeps none, like memory, has
    them in each process: none are seen from here). A pattern's limits hold for
    each key it matches."""
    config = load_config(config_path)
    tables = {
        k: Rule(v.max_in_flight, v.max_requests, v.per, v.max_tokens)
        for k, v in config.limits.keys.items()
    }
    with reported():
        store = assembly.build_store(config)
    adapter = StoreAdapter(store)
    try:
        shared = isinstance(store, HoldsSlots)
        in_use: dict[str, int] = {}
        waiting: dict[str, int] = {}
        with reported():
            if shared:
                in_use = run_sync(_done(store.slots_in_use(time.time())))
            if isinstance(store, CountsWaiters):
                waiting = by_key(run_sync(_done(store.waiting_counts(time.time()))))
        rows = limit_rows(tables, in_use, waiting)
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
    columns = "key|max in flight|max requests|max tokens|from|in flight|waiting|started|tokens"
    for column in columns.split("|"):
        table.add_column(column)
    for row in rows:
        per = "" if row["per"] is None else f" / {row['per']:g} s"
        table.add_row(
            terminal_text(row["key"]),
            _dash(row["limit"]),
            "-" if row["max_requests"] is None else f"{row['max_requests']}{per}",
            "-" if row["max_tokens"] is None else f"{row['max_tokens']}{per}",
            "-" if row["table"] is None else terminal_text(row["table"]),
            str(row["in_flight"]),
            str(row["waiting"]),
            _dash(row["started"]),
            _dash(row["tokens"]),
        )
    table_console().print(table)


def _dash(value: object) -> str:
    return "-" if value is None else str(value)
