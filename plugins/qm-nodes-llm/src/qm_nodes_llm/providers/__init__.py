"""LLM providers: the contract, the built-in providers' settings, and provider sources.

Provider modules import their SDKs lazily, so importing this package is cheap."""

from qm_nodes_llm.providers.anthropic_provider import AnthropicSettings
from qm_nodes_llm.providers.base import (
    PROVIDER_KIND,
    LLMProvider,
    PluginProviders,
    ProviderSource,
    StaticProviders,
    UnknownProviderError,
    clear_provider_pool,
)
from qm_nodes_llm.providers.llamacpp_provider import LlamaCppSettings
from qm_nodes_llm.providers.local_models import find_local_model, require_smollm2, smollm2_path
from qm_nodes_llm.providers.ollama import OllamaSettings, probe_ollama
from qm_nodes_llm.providers.openai_provider import OpenAISettings

__all__ = [
    "PROVIDER_KIND",
    "AnthropicSettings",
    "LLMProvider",
    "LlamaCppSettings",
    "OllamaSettings",
    "OpenAISettings",
    "PluginProviders",
    "ProviderSource",
    "StaticProviders",
    "UnknownProviderError",
    "clear_provider_pool",
    "find_local_model",
    "probe_ollama",
    "require_smollm2",
    "smollm2_path",
]
