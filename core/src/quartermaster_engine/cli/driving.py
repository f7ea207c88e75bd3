"""Driving a flow for a command (``qm run``, ``resume``, ``recover``, ``flows retry``,
``flows fork``, ``schedules run``): the command's engine, running the call with
progress on stderr, answering waiting nodes in place on a terminal, reporting the
result (text or ``--json``) and exiting with the status the command line documents."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn
from uuid import UUID

import click

from quartermaster_engine._sync import run_sync
from quartermaster_engine.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PAUSED,
    echo_json,
    fail,
    guarded,
    load_config,
    reported,
    terminal_text,
)
from quartermaster_engine.cli.flow_ids import no_flow, resolve_flow_id
from quartermaster_engine.cli.progress import Progress
from quartermaster_engine.config import EngineConfig
from quartermaster_engine.runner import Engine, FlowResult
from quartermaster_engine.stores.records import FlowStatus


def _result_json(result: FlowResult) -> dict[str, Any]:
    return {
        "flow_id": str(result.flow_id),
        "status": result.status.value,
        "final_output": result.final_output,
        "error": result.error,
        "waiting": [w.to_dict() for w in result.waiting],
        "duration_seconds": round(result.duration_seconds, 6),
    }


def _config_flag(config_path: str | None) -> str:
    return f" --config {shlex.quote(config_path)}" if config_path else ""


def finish(
    engine: Engine,
    result: FlowResult,
    *,
    as_json: bool,
    quiet: bool,
    interactive: bool,
    config_path: str | None,
) -> int:
    """Answer waiting nodes in place when we can, then report and pick the exit status."""
    while result.paused and interactive:
        waiting = result.waiting[0]
        options = f" [{' / '.join(waiting.options)}]" if waiting.options else ""
        # On stderr, with the progress: stdout carries only the flow's output.
        question = f"{waiting.node_name}: {waiting.prompt or 'your answer'}{options}"
        answer = click.prompt(terminal_text(question), err=True)
        result = guarded(run_sync, engine.resume(result.flow_id, answer, waiting.node_id))
    if as_json:
        echo_json(_result_json(result))
    elif result.status is FlowStatus.COMPLETED:
        click.echo(terminal_text(result.final_output))
        if not quiet:
            click.echo(
                f"completed in {result.duration_seconds:.3f} s (flow {result.flow_id})", err=True
            )
    elif result.paused:
        for waiting in result.waiting:
            options = f" [{' / '.join(waiting.options)}]" if waiting.options else ""
            asks = f"{waiting.node_name} asks: {waiting.prompt}{options}"
            click.echo(terminal_text(asks), err=True)
        command = f"qm resume {result.flow_id} --input ANSWER{_config_flag(config_path)}"
        click.echo(f"flow {result.flow_id} is paused; continue it with:\n  {command}", err=True)
        if not engine.store_adapter.durable or (
            engine.config and engine.config.store.name == "memory"
        ):
            click.echo(
                "note: the store is in memory, so this flow ends with this process; configure "
                'a durable store to resume later (e.g. [store] name = "sqlite").',
                err=True,
            )
    else:
        reason = result.error or f"flow {result.status.value}"
        line = terminal_text(reason.splitlines()[0] if reason else "")
        click.echo(f"error: {line} (flow {result.flow_id})", err=True)
    if result.status is FlowStatus.COMPLETED:
        return EXIT_OK
    return EXIT_PAUSED if result.paused else EXIT_FAILED


def command_engine(
    config: EngineConfig, as_json: bool, quiet: bool, nodes: dict[str, Any] | None = None
) -> Engine:
    """The command's engine, from config; ``nodes`` overrides node executor settings."""
    on_event = None if (as_json or quiet) else Progress()
    extra: dict[str, Any] = {"nodes": nodes} if nodes else {}
    return guarded(Engine.from_config, config, on_event=on_event, **extra)


def drive(
    engine: Engine,
    call: Callable[[], Awaitable[FlowResult]],
    flow_id: UUID,
    *,
    config_path: str | None,
    as_json: bool,
    quiet: bool,
    interactive: bool,
) -> NoReturn:
    """Run ``call`` on ``engine`` (closing it after), report, and exit with the status."""
    with engine:
        try:
            result = guarded(run_sync, call())
        except KeyboardInterrupt:
            fail(
                f"interrupted; flow {flow_id} is left as it was in the store. With a durable "
                f"store, continue it with: qm recover {flow_id}{_config_flag(config_path)}"
            )
        code = finish(
            engine,
            result,
            as_json=as_json,
            quiet=quiet,
            interactive=interactive,
            config_path=config_path,
        )
    raise click.exceptions.Exit(code)


def can_ask(as_json: bool) -> bool:
    """Whether the command may ask for answers in place: on a terminal, without --json."""
    return sys.stdin.isatty() and not as_json


def stored_engine(
    config_path: str | None, flow_id: str, as_json: bool, quiet: bool
) -> tuple[Engine, UUID]:
    """The engine for the stored flow FLOW_ID (an id or a unique prefix) names, and
    that flow's id (the flow brings its own graph): its store must continue flows
    across processes and hold the flow."""
    config = load_config(config_path)
    engine = command_engine(config, as_json, quiet)
    try:
        with reported():
            adapter = engine.store_adapter
            if not adapter.durable:
                fail(
                    f"the configured store ({config.store.name}) cannot continue flows "
                    "across processes"
                )
            fid = resolve_flow_id(adapter, flow_id, config.store.name)
            record = run_sync(adapter.get_flow(fid))
            if record is None:
                fail(no_flow(fid, engine.store, f" in the store ({config.store.name})"))
    except BaseException:
        engine.close()
        raise
    return engine, fid
