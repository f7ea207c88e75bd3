"""``qm budgets``: each budget key across flows (``[budgets."<key>"]``), its limits
and the usage counted so far, read from the store (docs/limits.md)."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from quartermaster_engine import assembly
from quartermaster_engine._sync import run_sync
from quartermaster_engine.budgets import BudgetsConfig, KeyBudget
from quartermaster_engine.cli.common import (
    config_option,
    echo_json,
    json_option,
    load_config,
    reported,
    table_console,
    terminal_text,
)
from quartermaster_engine.stores.adapter import StoreAdapter, _done
from quartermaster_engine.stores.base import KeepsKeyUsage


def budget_rows(
    config: BudgetsConfig, totals: dict[str, tuple[int, int, float]]
) -> list[dict[str, Any]]:
    """A row per key with usage (its budget from its own table or the first pattern
    matching it), then a row per table no such key falls under."""
    tables = config.keys
    rows: list[dict[str, Any]] = []
    used_tables: set[str] = set()

    def row(key: str, table: str | None, used: tuple[int, int, float]) -> dict[str, Any]:
        budget: KeyBudget | None = None if table is None else tables[table]
        return {
            "key": key,
            "table": table,
            "max_node_runs": None if budget is None else budget.max_node_runs,
            "max_tokens": None if budget is None else budget.max_tokens,
            "max_cost": None if budget is None else budget.max_cost,
            "on_exceeded": None if budget is None else budget.on_exceeded,
            "node_runs": used[0],
            "tokens": used[1],
            "cost": round(used[2], 9),
        }

    for key in sorted(totals):
        table = config.table_of(key)
        if table is not None:
            used_tables.add(table)
        rows.append(row(key, table, totals[key]))
    for table in tables:
        if table not in used_tables:
            rows.append(row(table, table, (0, 0, 0.0)))
    return rows


@click.command("budgets")
@config_option
@json_option
def budgets_command(config_path: str | None, as_json: bool) -> None:
    """Each key with a [budgets."<key>"] table: its max_node_runs, max_tokens and
    max_cost, and the node runs, tokens and cost its activations used across flows,
    read from the store every process shares (a store that keeps none, like memory,
    has them in each process: none are seen from here). A pattern's budget holds
    for each key it matches."""
    config = load_config(config_path)
    budgets = config.budgets if config.budgets is not None else BudgetsConfig()
    with reported():
        store = assembly.build_store(config)
    adapter = StoreAdapter(store)
    shared = isinstance(store, KeepsKeyUsage)
    totals: dict[str, tuple[int, int, float]] = {}
    try:
        if shared:
            with reported():
                found = run_sync(_done(store.key_usages()))
            totals = {str(k): (int(r), int(t), float(c)) for k, (r, t, c) in found.items()}
    finally:
        run_sync(adapter.close())
    rows = budget_rows(budgets, totals)
    if as_json:
        echo_json(
            {
                "store": config.store.name,
                "shared": shared,
                "currency": budgets.currency,
                "keys": rows,
            }
        )
        return
    if not shared:
        click.echo(
            f"the {config.store.name} store keeps no usage per key: each process counts its "
            "own, and none is seen from here"
        )
    if not rows:
        click.echo('no key has a budget (add a [budgets."<key>"] table with max_tokens)')
        return
    table = Table()
    columns = "key|max node runs|max tokens|max cost|on exceeded|from|node runs|tokens|cost"
    for column in columns.split("|"):
        table.add_column(column)
    unit = f" {budgets.currency}"
    for row in rows:
        table.add_row(
            terminal_text(row["key"]),
            _dash(row["max_node_runs"]),
            _dash(row["max_tokens"]),
            "-" if row["max_cost"] is None else f"{row['max_cost']:g}{unit}",
            _dash(row["on_exceeded"]),
            "-" if row["table"] is None else terminal_text(row["table"]),
            str(row["node_runs"]),
            str(row["tokens"]),
            f"{row['cost']:g}{unit}",
        )
    table_console().print(table)


def _dash(value: object) -> str:
    return "-" if value is None else str(value)
