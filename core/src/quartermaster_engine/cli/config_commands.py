"""``qm config show``: the effective configuration and where each value came from."""

from __future__ import annotations

import click
from rich.table import Table

from quartermaster_engine import assembly
from quartermaster_engine.cli.common import (
    config_option,
    echo_json,
    guarded,
    json_option,
    table_console,
)
from quartermaster_engine.config import EngineConfig
from quartermaster_engine.plugins.loader import load_plugins
from quartermaster_engine.redaction import redact_text


@click.group("config")
def config_group() -> None:
    """Inspect configuration."""


@config_group.command("show")
@config_option
@json_option
def show_command(config_path: str | None, as_json: bool) -> None:
    """Print every effective setting with its source (default, file, environment),
    and check each backend's settings against the plugin that registered it."""
    config: EngineConfig = guarded(EngineConfig.load, config_path)
    rows = config.describe()
    plugins = guarded(load_plugins)
    problems: list[str] = []
    checks = [
        ("store", config.store, "store"),
        ("dispatcher", config.dispatcher, "dispatcher"),
        *(("event_sink", sink, f"sinks.{i}") for i, sink in enumerate(config.sinks)),
    ]
    for kind, section, key in checks:
        try:
            registration = plugins.registry(kind).get(section.name)
            assembly.settings_for(registration, section.settings, config, key)
        except (LookupError, ValueError) as exc:
            problems.append(redact_text(str(exc)))
    if as_json:
        echo_json(
            {
                "config_dir": str(config.config_dir),
                "values": [{"key": k, "value": v, "source": s} for k, v, s in rows],
                "problems": problems,
            }
        )
    else:
        table = Table(title=f"effective configuration (relative paths from {config.config_dir})")
        for column in ("key", "value", "source"):
            table.add_column(column)
        for key, value, source in rows:
            table.add_row(key, repr(value) if not isinstance(value, str) else value, source)
        table_console().print(table)
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
    if problems:
        raise click.exceptions.Exit(1)
