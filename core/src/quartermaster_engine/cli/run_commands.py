"""``qm run``, ``qm resume`` and ``qm recover``: run flows from the command line.

Progress goes to stderr while the flow runs, the final output to stdout. When
a node waits for input and stdin is a terminal, ``qm run`` asks and resumes in
place; otherwise it prints the flow id and the exact ``qm resume`` command.
``qm run --provider NAME --model NAME`` puts every LLM node (qm-nodes-llm) on that
provider and model; without them the pack's own detection applies.

Exit status: 0 completed, 1 failed, stopped or an error (one line on stderr),
2 usage error, 3 paused (waiting for input).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn
from uuid import UUID, uuid4

import click
from rich.console import Console

from quartermaster_engine._sync import run_sync
from quartermaster_engine.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PAUSED,
    config_option,
    echo_json,
    fail,
    guarded,
    json_option,
    load_config,
    load_graph_file,
    reported,
    terminal_text,
)
from quartermaster_engine.cli.flow_ids import flow_id_argument, no_flow, resolve_flow_id
from quartermaster_engine.config import EngineConfig
from quartermaster_engine.convenience import llm_node_settings
from quartermaster_engine.events import FlowEvent, TokenGenerated
from quartermaster_engine.history.message_edits import messages_arg
from quartermaster_engine.runner import Engine, FlowResult
from quartermaster_engine.runner.arguments import text_arg
from quartermaster_engine.sinks.console import ConsoleSink
from quartermaster_engine.stores.records import FlowStatus

_STYLES = {
    "NodeFinished": "green",
    "FlowError": "red",
    "NodeRetrying": "yellow",
    "NodeSkipped": "yellow",
    "UserInputRequired": "cyan",
    "FlowFinished": "bold",
    "FlowStopped": "bold yellow",
    "FlowPaused": "bold cyan",
}


class Progress:
    """Shows events on stderr as they happen (rich styles on a terminal)."""

    def __init__(self) -> None:
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self.lines = ConsoleSink()
        self._streaming = False

    def __call__(self, event: FlowEvent) -> None:
        if isinstance(event, TokenGenerated):
            self.console.out(terminal_text(event.token), end="", highlight=False)
            self._streaming = True
            return
        line = self.lines.format(event)
        if line is None:
            return
        if self._streaming:
            self.console.out("")
            self._streaming = False
        self.console.print(terminal_text(line), style=_STYLES.get(event.type), markup=False)


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


def _finish(
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


def _engine(
    config: EngineConfig, as_json: bool, quiet: bool, nodes: dict[str, Any] | None = None
) -> Engine:
    """The command's engine, from config; ``nodes`` overrides node executor settings."""
    on_event = None if (as_json or quiet) else Progress()
    extra: dict[str, Any] = {"nodes": nodes} if nodes else {}
    return guarded(Engine.from_config, config, on_event=on_event, **extra)


def _drive(
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
        code = _finish(
            engine,
            result,
            as_json=as_json,
            quiet=quiet,
            interactive=interactive,
            config_path=config_path,
        )
    raise click.exceptions.Exit(code)


def _interactive(as_json: bool) -> bool:
    return sys.stdin.isatty() and not as_json


@click.command("run")
@click.argument("graph", type=click.Path(dir_okay=False))
@click.option("--input", "-i", "input_text", required=True, help="The flow's input text.")
@config_option
@json_option
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@click.option("--flow-id", type=click.UUID, default=None, help="Id for the new flow.")
@click.option(
    "--provider",
    default=None,
    help="LLM provider for every LLM node (openai, anthropic, ollama, llamacpp, ...); "
    "default: each node's own, else the config's, else detected (needs qm-nodes-llm).",
)
@click.option("--model", default=None, help="Model for every LLM node (needs qm-nodes-llm).")
def run_command(
    graph: str,
    input_text: str,
    config_path: str | None,
    as_json: bool,
    quiet: bool,
    flow_id: UUID | None,
    provider: str | None,
    model: str | None,
) -> None:
    """Run GRAPH (YAML or JSON) on the configured store and dispatcher."""
    guarded(text_arg, input_text, "--input")
    spec = load_graph_file(graph)
    config = load_config(config_path)
    fid = flow_id or uuid4()
    # --provider/--model become [nodes."<LLM type>"] settings of the LLM node pack.
    try:
        nodes = llm_node_settings(provider, model)
    except ImportError as exc:
        fail(str(exc))
    engine = _engine(config, as_json, quiet, nodes=nodes)
    _drive(
        engine,
        lambda: engine.run(spec, input_text, fid),
        fid,
        config_path=config_path,
        as_json=as_json,
        quiet=quiet,
        interactive=_interactive(as_json),
    )


def _stored_engine(
    config_path: str | None, flow_id: str, as_json: bool, quiet: bool
) -> tuple[Engine, UUID]:
    """The engine for the stored flow FLOW_ID (an id or a unique prefix) names, and
    that flow's id (the flow brings its own graph): its store must continue flows
    across processes and hold the flow."""
    config = load_config(config_path)
    engine = _engine(config, as_json, quiet)
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


@click.command("resume")
@flow_id_argument
@click.option("--input", "-i", "input_text", required=True, help="The answer to give.")
@click.option("--node", default=None, help="Name or id of the waiting node (default: the first).")
@config_option
@json_option
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def resume_command(
    flow_id: str,
    input_text: str,
    node: str | None,
    config_path: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Give INPUT to a paused flow and continue it (a durable store makes this work
    from another process). FLOW_ID is the id or a unique prefix of it."""
    guarded(text_arg, input_text, "--input")
    engine, fid = _stored_engine(config_path, flow_id, as_json, quiet)
    _drive(
        engine,
        lambda: engine.resume(fid, input_text, node),
        fid,
        config_path=config_path,
        as_json=as_json,
        quiet=quiet,
        interactive=_interactive(as_json),
    )


@click.command("recover")
@flow_id_argument
@config_option
@json_option
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def recover_command(flow_id: str, config_path: str | None, as_json: bool, quiet: bool) -> None:
    """Continue a flow whose run was interrupted (crash, lost connection): only the
    activations that had not committed run again. FLOW_ID is the id or a unique
    prefix of it."""
    engine, fid = _stored_engine(config_path, flow_id, as_json, quiet)
    _drive(
        engine,
        lambda: engine.recover(fid),
        fid,
        config_path=config_path,
        as_json=as_json,
        quiet=quiet,
        interactive=False,
    )


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
    engine, fid = _stored_engine(config_path, flow_id, as_json, quiet)
    _drive(
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
    engine, fid = _stored_engine(config_path, flow_id, True, True)
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
    engine, source = _stored_engine(config_path, flow_id, as_json, quiet)

    async def go() -> FlowResult:
        fid = await engine.fork(
            source, at=at, memory=values, input=input_text, answer=answer, reuse=reuse
        )
        if not as_json:
            click.echo(f"flow {fid} forked from {source}", err=True)
        return await engine.recover(fid)

    _drive(
        engine,
        go,
        source,
        config_path=config_path,
        as_json=as_json,
        quiet=quiet,
        interactive=_interactive(as_json),
    )


@click.command("run")
@click.argument("name")
@config_option
@json_option
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def schedule_run_command(name: str, config_path: str | None, as_json: bool, quiet: bool) -> None:
    """Fire schedule NAME by hand: start one flow of it now and run it as qm run does
    (its log has ScheduleFired with manual; the schedule's next tick does not move)."""
    config = load_config(config_path)
    fid = uuid4()
    engine = _engine(config, as_json, quiet)
    _drive(
        engine,
        lambda: engine.schedules.run_now(name, flow_id=fid),
        fid,
        config_path=config_path,
        as_json=as_json,
        quiet=quiet,
        interactive=_interactive(as_json),
    )
