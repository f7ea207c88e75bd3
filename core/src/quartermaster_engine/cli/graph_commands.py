"""``qm validate`` and ``qm show``: check and print graph files."""

from __future__ import annotations

import click


@click.command("validate")
@click.argument("graph", type=click.Path(dir_okay=False))
def validate_command(graph: str) -> None:
    """Check GRAPH (YAML or JSON) and print every problem found."""
    raise click.ClickException("not implemented yet")


@click.command("show")
@click.argument("graph", type=click.Path(dir_okay=False))
def show_command(graph: str) -> None:
    """Print the nodes and edges of GRAPH."""
    raise click.ClickException("not implemented yet")
