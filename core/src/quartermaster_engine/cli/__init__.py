"""The ``qm`` command line: one click group, with each family of commands in its own module."""

from __future__ import annotations

import click

from quartermaster_engine.cli.graph_commands import show_command, validate_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="quartermaster-engine", prog_name="qm")
def main() -> None:
    """Quartermaster: run, inspect and operate agent graphs."""


main.add_command(validate_command)
main.add_command(show_command)

__all__ = ["main"]
