"""``qm flows retry``, ``qm flows edit`` and ``qm flows fork``: continue a failed flow
after a fix, change a stopped flow's memory or messages, or start a new flow from one
of its checkpoints (docs/history.md)."""

from __future__ import annotations

import json
from typing import Any

import click

from quartermaster_engine._sync import run_sync
from quartermaster_engine.cli.common import (
    config_option,
    guarded,
    json_option,
)
from quartermaster_engine.cli.driving import can_ask, drive, stored_engine
from quartermaster_engine.cli.flow_ids import flow_id_argument
from quartermaster_engine.history.message_edits import messages_arg
from quartermaster_engine.runner import FlowResult


def _memory_values(pairs: tuple[str, ...]) -> dict[str, Any] | None:
    """``KEY=VALUE`` pairs: VALUE read as JSON when it is JSON, else as text."""
    if not pairs:
        return None
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--set")
        try:
            values[key] = json.loads(text)
        except ValueError:
            values[key] = text
    return values


_set_option = click.option(
    "--set",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set a flow-memory value (VALUE is JSON, or text). Repeatable.",
)


@click.command("retry")
@flow_id_argument
@config_option
@json_option
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def retry_command(flow_id: str, config_path: str | None, as_json: bool, quiet: bool) -> None:
    """Continue a failed flow from the node that failed it (after a code or config
    fix); nodes that committed do not run again. FLOW_ID is the id or a unique
    prefix of it."""
    engine, fid = stored_engine(config_path, flow_id, as_json, quiet)
    drive(
        engine,
        lambda: engine.retry(fid),
        fid,
        config_path=config_path,
        as_json=as_json,
        quiet=quiet,
        interactive=False,
    )


@click.command("edit")
@flow_id_argument
@_set_option
@click.option(
    "--messages",
    "messages_json",
    default=None,
    metavar="JSON",
    help="Replace the input messages of the node that runs next: a JSON list of "
    '{"role": ..., "content": ...}.',
)
@click.option("--node", default=None, help="The node --messages is for (when several wait).")
@config_option
def edit_command(
    flow_id: str,
    pairs: tuple[str, ...],
    messages_json: str | None,
    node: str | None,
    config_path: str | None,
) -> None:
    """Set flow-memory values of a paused, failed or stopped flow, or replace the input
    messages of its waiting (or failed) node (logged in its history as an edit).
    FLOW_ID is the id or a unique prefix of it."""
    values = _memory_values(pairs)
    messages = None
    if messages_json is not None:
        try:
            messages = json.loads(messages_json)
        except ValueError as exc:
            raise click.UsageError(f"--messages is not JSON: {exc}") from None
        try:
            messages = messages_arg(messages)
        except ValueError as exc:
            raise click.UsageError(f"--messages: {exc}") from None
    if values is None and messages is None:
        raise click.UsageError("give at least one --set KEY=VALUE, or --messages")
    engine, fid = stored_engine(config_path, flow_id, True, True)
    with engine:
        seq = guarded(run_sync, engine.update(fid, memory=values, messages=messages, node=node))
    click.echo(f"edited flow {fid} (checkpoint {seq})")


@click.command("fork")
@flow_id_argument
@click.option("--at", type=int, default=None, help="The checkpoint (default: the last).")
@_set_option
@click.option("--input", "-i", "input_text", default=None, help="A new flow input.")
@click.option("--answer", default=None, help="Answer the node waiting at the checkpoint.")
@click.option(
    "--reuse",
    type=click.Choice(["unchanged"]),
    default=None,
    help="Reuse the original's result of each node whose inputs did not change.",
)
@config_option
@json_option
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def fork_command(
    flow_id: str,
    at: int | None,
    pairs: tuple[str, ...],
    input_text: str | None,
    answer: str | None,
    reuse: str | None,
    config_path: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Start a new flow from FLOW_ID (an id or a unique prefix) as it stood at a
    checkpoint (see `qm flows history`), with edits, and run it: nodes after the
    checkpoint run again (with --reuse unchanged: those whose inputs changed)."""
    values = _memory_values(pairs)
    engine, source = stored_engine(config_path, flow_id, as_json, quiet)

    async def go() -> FlowResult:
        fid = await engine.fork(
            source, at=at, memory=values, input=input_text, answer=answer, reuse=reuse
        )
        if not as_json:
            click.echo(f"flow {fid} forked from {source}", err=True)
        return await engine.recover(fid)

    drive(
        engine,
        go,
        source,
        config_path=config_path,
        as_json=as_json,
        quiet=quiet,
        interactive=can_ask(as_json),
    )
