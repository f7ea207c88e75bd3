"""``qm run``, ``qm resume`` and ``qm recover``: run flows from the command line.

Progress goes to stderr while the flow runs, the final output to stdout. When
a node waits for input and stdin is a terminal, ``qm run`` asks and resumes in
place; otherwise it prints the flow id and the exact ``qm resume`` command.
``qm run --provider NAME --model NAME`` puts every LLM node (qm-nodes-llm) on that
provider and model; without them the pack's own detection applies.

Exit status: 0 completed, 1 failed, stopped or an error (one line on stderr),
2 usage error, 3 paused (waiting for input).

``qm schedules run`` is here too (it runs a flow as ``qm run`` does); ``qm flows
retry``, ``edit`` and ``fork`` are in `edit_commands` (re-exported here). The
driving and reporting all of them share is `driving`'s.
"""

from __future__ import annotations

from uuid import UUID, uuid4

import click

from quartermaster_engine.cli.common import (
    config_option,
    fail,
    guarded,
    json_option,
    load_config,
    load_graph_file,
)
from quartermaster_engine.cli.driving import can_ask, command_engine, drive, stored_engine
from quartermaster_engine.cli.edit_commands import edit_command, fork_command, retry_command
from quartermaster_engine.cli.flow_ids import flow_id_argument
from quartermaster_engine.convenience import llm_node_settings
from quartermaster_engine.runner.arguments import text_arg

__all__ = [
    "edit_command",
    "fork_command",
    "recover_command",
    "resume_command",
    "retry_command",
    "run_command",
    "schedule_run_command",
]


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
    engine = command_engine(config, as_json, quiet, nodes=nodes)
    drive(
        engine,
        lambda: engine.run(spec, input_text, fid),
        fid,
        config_path=config_path,
        as_json=as_json,
        quiet=quiet,
        interactive=can_ask(as_json),
    )


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
    engine, fid = stored_engine(config_path, flow_id, as_json, quiet)
    drive(
        engine,
        lambda: engine.resume(fid, input_text, node),
        fid,
        config_path=config_path,
        as_json=as_json,
        quiet=quiet,
        interactive=can_ask(as_json),
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
    engine, fid = stored_engine(config_path, flow_id, as_json, quiet)
    drive(
        engine,
        lambda: engine.recover(fid),
        fid,
        config_path=config_path,
        as_json=as_json,
        quiet=quiet,
        interactive=False,
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
    engine = command_engine(config, as_json, quiet)
    drive(
        engine,
        lambda: engine.schedules.run_now(name, flow_id=fid),
        fid,
        config_path=config_path,
        as_json=as_json,
        quiet=quiet,
        interactive=can_ask(as_json),
    )
