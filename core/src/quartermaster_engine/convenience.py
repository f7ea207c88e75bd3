"""0.1.5's ``run_graph()``, whose implementation lives in the LLM node pack (qm-nodes-llm).

Importing this module imports nothing from the pack and reads no environment; the
pack's functions are found through the plugin registry (see `plugins.exports`)
when ``run_graph`` is called: the core imports no plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quartermaster_engine.runner.result import FlowResult


def _pack(name: str, what: str) -> Any:
    from quartermaster_engine.plugins.exports import exported

    return exported(__name__, name, f"{what} needs the LLM nodes: pip install qm-nodes-llm")


def run_graph(
    agent: Any,
    user_input: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    config: Any = None,
) -> FlowResult:
    """Run ``agent`` (a GraphSpec, a GraphBuilder or a graph file) on ``user_input``,
    streaming the model's tokens to stdout; on a terminal, User nodes ask on stdin and
    the flow resumes. ``provider`` / ``model`` force every LLM node onto them; otherwise
    the provider is detected (see ``docs/nodes-llm.md``). Returns the `FlowResult`.

    Implemented by ``qm_nodes_llm.run_graph``; raises ImportError when qm-nodes-llm is
    not installed.
    """
    result: FlowResult = _pack("run_graph", "run_graph()")(
        agent, user_input=user_input, provider=provider, model=model, config=config
    )
    return result


def llm_node_settings(provider: str | None, model: str | None) -> dict[str, Any]:
    """The ``nodes`` configuration forcing every LLM node onto ``provider`` / ``model``
    (``qm run --provider/--model``); ``{}`` when both are None."""
    if not provider and not model:
        return {}
    settings: dict[str, Any] = _pack("llm_node_settings", "--provider/--model")(provider, model)
    return settings
