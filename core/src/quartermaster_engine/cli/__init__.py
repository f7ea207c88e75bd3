"""The ``qm`` command line: one click group, with each family of commands in its own module."""

from __future__ import annotations

import io
import sys
import warnings

import click

from quartermaster_engine.cli.budgets_commands import budgets_command
from quartermaster_engine.cli.clock_command import clock_command
from quartermaster_engine.cli.config_commands import config_group
from quartermaster_engine.cli.edit_commands import edit_command, fork_command, retry_command
from quartermaster_engine.cli.flows_commands import flows_group
from quartermaster_engine.cli.graph_commands import show_command, validate_command
from quartermaster_engine.cli.history_commands import history_command
from quartermaster_engine.cli.limits_commands import limits_command
from quartermaster_engine.cli.migrate_commands import migrate_command
from quartermaster_engine.cli.plugin_commands import PluginCommandGroup
from quartermaster_engine.cli.plugins_commands import plugins_command
from quartermaster_engine.cli.run_commands import (
    recover_command,
    resume_command,
    run_command,
    schedule_run_command,
)
from quartermaster_engine.cli.schedules_commands import schedules_group

#: Every exit status of ``qm`` (the README's "Command line" says the same); "\b" keeps
#: click from re-wrapping it.
EXIT_STATUSES = """\b
Exit status:
  0  done (run, resume, recover: the flow completed)
  1  an error, one line on stderr (run, resume, recover: the flow failed or
     was stopped)
  2  usage error (an unknown option, a missing argument)
  3  run, resume: the flow is paused, waiting for input (continue it with
     qm resume FLOW_ID --input ANSWER)"""


@click.group(
    cls=PluginCommandGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EXIT_STATUSES,
)
@click.version_option(package_name="quartermaster-engine", prog_name="qm")
def main() -> None:
    """Quartermaster: run, inspect and operate agent graphs."""
    warnings.showwarning = _show_warning
    # Text no terminal can show (a lone surrogate in a node's output) is printed
    # escaped (\udcff) instead of crashing the command.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    """Warnings as one line on stderr (a command line shows no source lines)."""
    click.echo(f"warning: {message}", err=True)


for command in (
    run_command,
    resume_command,
    recover_command,
    validate_command,
    show_command,
    plugins_command,
    config_group,
    flows_group,
    limits_command,
    budgets_command,
    schedules_group,
    clock_command,
):
    main.add_command(command)
for command in (history_command, edit_command, fork_command, retry_command, migrate_command):
    flows_group.add_command(command)
schedules_group.add_command(schedule_run_command)

__all__ = ["main"]
