"""``qm plugins``: what is installed, what each plugin provides, what failed to load."""

from __future__ import annotations

import click
from rich.table import Table

from quartermaster_engine.cli.common import echo_json, guarded, json_option, table_console
from quartermaster_engine.plugins.loader import load_plugins
from quartermaster_engine.plugins.registry import kind_label


@click.command("plugins")
@json_option
def plugins_command(as_json: bool) -> None:
    """List installed plugins: name, distribution, version, hooks, what each provides,
    and load errors. Honours QM_LOAD_PLUGINS, QM_DISABLE_PLUGINS and QM_STRICT_PLUGINS."""
    plugin_set = guarded(load_plugins, refresh=True)
    if as_json:
        echo_json(plugin_set.to_dict())
        return
    table = Table(title="Quartermaster plugins", show_lines=False)
    for column in ("plugin", "distribution", "provides", "status"):
        table.add_column(column)
    for info in plugin_set.plugins:
        provides = "\n".join(
            f"{kind_label(kind)}s: {', '.join(names)}" for kind, names in info.provides.items()
        )
        status = f"[red]error: {info.error}[/red]" if info.error else "ok"
        table.add_row(info.name, f"{info.distribution} {info.version}", provides or "-", status)
    table_console().print(table)
