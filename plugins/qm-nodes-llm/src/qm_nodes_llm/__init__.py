"""qm-nodes-llm: the LLM node executors of Quartermaster.

Installed, the pack registers its node types (Instruction1, Summarize1, Decision1,
Agent1, InstructionParameters1, Merge1) and providers (``openai``, ``ollama``,
``anthropic``, ``llamacpp``) through the entry point ``llm`` of group
``quartermaster``, and declares two hooks other packages implement:
``qm_register_llm_providers`` and ``qm_register_llm_tools``.

Without plugin discovery::

    from qm_nodes_llm import InstructionExecutor, LLMNodeSettings

    executor = InstructionExecutor(LLMNodeSettings(provider="openai"))

See ``docs/nodes-llm.md``.
"""

from qm_nodes_llm.detect import Detection, NoProviderError, clear_detection_cache, detect_provider
from qm_nodes_llm.events import (
    LLMCallFinished,
    LLMCallStarted,
    ToolCallFinished,
    ToolCallStarted,
    emit_event,
)
from qm_nodes_llm.nodes import (
    EXECUTORS,
    LLM_NODE_TYPES,
    AgentExecutor,
    Binding,
    DecisionExecutor,
    InstructionExecutor,
    InstructionFormExecutor,
    InstructionParametersExecutor,
    LLMExecutor,
    MergeExecutor,
    NodeFailure,
    SummarizeExecutor,
)
from qm_nodes_llm.providers import (
    AnthropicSettings,
    LlamaCppSettings,
    LLMProvider,
    OllamaSettings,
    OpenAISettings,
    PluginProviders,
    ProviderSource,
    StaticProviders,
    UnknownProviderError,
    clear_provider_pool,
    find_local_model,
)
from qm_nodes_llm.run import llm_node_settings, run_graph
from qm_nodes_llm.settings import LLM_KEYS, LLMNodeSettings
from qm_nodes_llm.tools import (
    PluginTools,
    StaticTools,
    Tool,
    ToolError,
    ToolSource,
    UnknownToolError,
    function_tool,
)
from qm_nodes_llm.types import (
    ChatMessage,
    JsonSchema,
    LLMRequest,
    LLMResponse,
    ProviderError,
    ProviderUnavailableError,
    ToolCall,
    ToolSpec,
)

__version__ = "0.2.0"

__all__ = [
    "EXECUTORS",
    "LLM_KEYS",
    "LLM_NODE_TYPES",
    "AgentExecutor",
    "AnthropicSettings",
    "Binding",
    "ChatMessage",
    "DecisionExecutor",
    "Detection",
    "InstructionExecutor",
    "InstructionFormExecutor",
    "InstructionParametersExecutor",
    "JsonSchema",
    "LLMCallFinished",
    "LLMCallStarted",
    "LLMExecutor",
    "LLMNodeSettings",
    "LLMProvider",
    "LLMRequest",
    "LLMResponse",
    "LlamaCppSettings",
    "MergeExecutor",
    "NoProviderError",
    "NodeFailure",
    "OllamaSettings",
    "OpenAISettings",
    "PluginProviders",
    "PluginTools",
    "ProviderError",
    "ProviderSource",
    "ProviderUnavailableError",
    "StaticProviders",
    "StaticTools",
    "SummarizeExecutor",
    "Tool",
    "ToolCall",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolError",
    "ToolSource",
    "ToolSpec",
    "UnknownProviderError",
    "UnknownToolError",
    "clear_detection_cache",
    "clear_provider_pool",
    "detect_provider",
    "emit_event",
    "find_local_model",
    "function_tool",
    "llm_node_settings",
    "run_graph",
]
