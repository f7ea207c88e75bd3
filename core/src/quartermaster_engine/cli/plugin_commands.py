"""``qm`` subcommands that plugins add through ``qm_register_commands``.

Plugins load only when a command is not one of the core's, so ``qm run`` pays
nothing for them. A command a known distribution provides, asked for while that
distribution is not installed, says which one to install.
"""

from __future__ import annotations

import click

from quartermaster_engine.cli.common import fail, guarded
from quartermaster_engine.plugins.loader import load_plugins

#: Commands first-party distributions add, and the distribution to install for each.
KNOWN_PLUGIN_COMMANDS = {"serve": "qm-server", "worker": "qm-dispatch-celery"}
#: What a known command does, when its missing distribution's name does not say it.
_PURPOSE = {"worker": "qm worker runs Celery workers"}


class PluginCommandGroup(click.Group):
    """A click group that also offers the commands installed plugins register."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        commands = guarded(load_plugins).commands
        if cmd_name in commands:
            created: click.Command = commands.get(cmd_name).create()
            return created
        distribution = KNOWN_PLUGIN_COMMANDS.get(cmd_name)
        if distribution is not None:
            purpose = _PURPOSE.get(cmd_name)
            if purpose is not None:
                fail(f"{purpose}: pip install {distribution}")
            fail(
                f"`qm {cmd_name}` is provided by the {distribution} distribution, which is "
                f"not installed: pip install {distribution}"
            )
        return None

    def list_commands(self, ctx: click.Context) -> list[str]:
        installed = guarded(load_plugins).commands.names()
        return sorted({*super().list_commands(ctx), *installed})
