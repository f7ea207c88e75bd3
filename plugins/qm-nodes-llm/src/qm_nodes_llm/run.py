"""``run_graph()``: run an agent graph in one call, streaming the model's tokens to stdout.

Exported from ``quartermaster_engine`` as in 0.1.5 (through a lazy shim, so importing
the engine never imports this pack). Nothing happens at import time: no environment
is read or written until ``run_graph`` is called.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from qm_nodes_llm.detect import Detection, detect_provider
from qm_nodes_llm.nodes import LLM_NODE_TYPES
from quartermaster_engine import (
    FlowError,
    FlowEvent,
    FlowResult,
    FlowRunner,
    NodeFinished,
    TokenGenerated,
)
from quartermaster_engine.config import EngineConfig
from quartermaster_graph import GraphSpec, load_graph


def llm_node_settings(provider: str | None = None, model: str | None = None) -> dict[str, Any]:
    """The ``nodes`` configuration that makes every LLM node use ``provider`` and/or
    ``model`` (what ``qm run --provider/--model`` and ``run_graph(provider=, model=)``
    apply); empty when both are None."""
    section: dict[str, Any] = {}
    if provider:
        section.update(provider=provider, force_provider=True)
    if model:
        section.update(model=model, force_model=True)
    return {node_type: dict(section) for node_type in LLM_NODE_TYPES} if section else {}


def as_graph(agent: Any) -> GraphSpec:
    """A `GraphSpec` from a spec, a builder (``build()``), or a graph file path."""
    if isinstance(agent, GraphSpec):
        return agent
    if isinstance(agent, str | Path):
        return load_graph(agent)
    build = getattr(agent, "build", None)
    if callable(build):
        built = build()
        if isinstance(built, GraphSpec):
            return built
    raise TypeError(
        f"run_graph() needs a GraphSpec, a GraphBuilder or a graph file path; got "
        f"{type(agent).__name__}"
    )


def _needs_detection(graph: GraphSpec, config: EngineConfig) -> bool:
    """Whether some LLM node of ``graph`` names no provider and the config gives none."""
    for node in graph.nodes:
        if node.type_name not in LLM_NODE_TYPES or node.metadata.get("llm_provider"):
            continue
        if not config.nodes.get(node.type_name, {}).get("provider"):
            return True
    return False


def _detected_settings(detection: Detection, nodes: dict[str, Any]) -> dict[str, Any]:
    """Hand what run_graph detected to the executors, as the configuration's defaults (a
    node's own ``llm_provider`` / ``llm_model`` still win)."""
    section: dict[str, Any] = {
        "provider": detection.provider,
        "providers": {detection.provider: dict(detection.settings)},
    }
    if detection.model:
        section["model"] = detection.model
    return {t: {**section, **nodes.get(t, {})} for t in LLM_NODE_TYPES}


class StreamPrinter:
    """Prints streamed tokens as they arrive, and failures, the way 0.1.5's run_graph did."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err
        self.streamed: dict[Any, list[str]] = {}
        self._open_line = False

    def __call__(self, event: FlowEvent) -> None:
        if isinstance(event, TokenGenerated):
            self.out.write(event.token)
            self.out.flush()
            self.streamed.setdefault(event.node_id, []).append(event.token)
            self._open_line = True
        elif isinstance(event, NodeFinished) and self._open_line:
            self.out.write("\n")
            self.out.flush()
            self._open_line = False
        elif isinstance(event, FlowError):
            self.err.write(f"error: {event.error}\n")
            self.err.flush()

    def printed(self, text: str) -> bool:
        return any("".join(tokens).strip() == text.strip() for tokens in self.streamed.values())


def run_graph(
    agent: Any,
    user_input: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    config: Any = None,
    *,
    ask: Callable[[str], str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> FlowResult:
    """Run ``agent`` (a GraphSpec, a GraphBuilder or a graph file) on ``user_input``.

    - ``provider`` / ``model`` force every LLM node onto that provider / model; without
      them each node's own ``llm_provider``, else the configuration, else detection
      decides (see `qm_nodes_llm.detect`); nothing found raises `NoProviderError`
      listing what was tried, before anything runs.
    - ``config``: an `EngineConfig`, a dict, a TOML path, or None (``qm.toml`` and the
      ``QM_*`` environment, as for ``FlowRunner.from_config``).
    - Tokens stream to stdout as they arrive; the final output is printed when it was
      not streamed. On a terminal, a node waiting for input (User1, ...) asks on stdin
      and the flow resumes; elsewhere the paused result is returned.

    Returns the `FlowResult`.
    """
    graph = as_graph(agent)
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    engine_config = EngineConfig.load(config)
    detection: Detection | None = None
    if not provider and _needs_detection(graph, engine_config):
        detection = detect_provider(environ=environ)
    nodes = llm_node_settings(provider, model)
    if detection is not None:
        err.write(f"using LLM provider {detection.describe()}\n")
        nodes = _detected_settings(detection, nodes)
    printer = StreamPrinter(out, err)
    overrides: dict[str, Any] = {"on_event": printer}
    if nodes:
        overrides["nodes"] = nodes
    interactive = ask is not None or (sys.stdin is not None and sys.stdin.isatty())
    answer = ask if ask is not None else input
    with FlowRunner.from_config(graph, engine_config, **overrides) as runner:
        result = runner.run(user_input if user_input is not None else "")
        while result.paused and interactive:
            waiting = result.waiting[0]
            options = f" [{' / '.join(waiting.options)}]" if waiting.options else ""
            reply = answer(f"{waiting.prompt or waiting.node_name or 'your answer'}{options}\n> ")
            result = runner.resume(result.flow_id, reply, waiting.node_id)
    if result.success and result.final_output and not printer.printed(result.final_output):
        out.write(result.final_output + "\n")
        out.flush()
    return result
