"""Plugin module (entry point ``llm`` of group ``quartermaster``): the LLM node types, the
built-in providers, and the hooks other packages implement to add providers and tools."""

from __future__ import annotations

from typing import Any

from qm_nodes_llm import hookspecs  # the loader adds the extension hooks it finds here
from qm_nodes_llm.nodes import EXECUTORS, LLMExecutor
from qm_nodes_llm.providers.anthropic_provider import AnthropicSettings, create_anthropic
from qm_nodes_llm.providers.llamacpp_provider import LlamaCppSettings, create_llamacpp
from qm_nodes_llm.providers.ollama import OllamaSettings, create_ollama
from qm_nodes_llm.providers.openai_provider import OpenAISettings, create_openai
from qm_nodes_llm.settings import LLMNodeSettings
from quartermaster_engine.plugins import Register, hookimpl

__all__ = [
    "hookspecs",
    "qm_register_exports",
    "qm_register_llm_providers",
    "qm_register_node_executors",
]


def _factory(cls: type[LLMExecutor[Any]]) -> Any:
    def create(settings: LLMNodeSettings) -> LLMExecutor[Any]:
        return cls(settings)

    create.__doc__ = (cls.__doc__ or "").strip().split("\n")[0]
    return create


@hookimpl
def qm_register_node_executors(register: Register) -> None:
    for cls in EXECUTORS:
        register(cls.node_type, _factory(cls), config_model=LLMNodeSettings)


@hookimpl
def qm_register_llm_providers(register: Register) -> None:
    register("openai", create_openai, config_model=OpenAISettings)
    register("ollama", create_ollama, config_model=OllamaSettings)
    register("anthropic", create_anthropic, config_model=AnthropicSettings)
    register("llamacpp", create_llamacpp, config_model=LlamaCppSettings)


def _run_graph(_: object) -> Any:
    """``run_graph`` (imported when first asked for: reading the plugin loads no model client)."""
    from qm_nodes_llm.run import run_graph

    return run_graph


def _llm_node_settings(_: object) -> Any:
    """``llm_node_settings``: the settings forcing every LLM node onto a provider/model."""
    from qm_nodes_llm.run import llm_node_settings

    return llm_node_settings


@hookimpl
def qm_register_exports(register: Register) -> None:
    # quartermaster_engine.run_graph (0.1.5) and qm run --provider/--model.
    register("quartermaster_engine.convenience:run_graph", _run_graph)
    register("quartermaster_engine.convenience:llm_node_settings", _llm_node_settings)
