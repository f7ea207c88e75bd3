"""qm-nodes-std: the standard non-LLM node executors of Quartermaster.

Installed, the pack registers itself (entry point ``std`` of group ``quartermaster``)
and every runner finds its node types. Without plugin discovery::

    from quartermaster_engine import FlowRunner
    from qm_nodes_std import std_registry

    runner = FlowRunner(graph, std_registry())

See ``docs/nodes-std.md`` for each node type, its metadata keys and an example.
"""

from qm_nodes_std.base import SettingsError, StdExecutor
from qm_nodes_std.branching import IfExecutor, StaticDecisionExecutor, SwitchExecutor
from qm_nodes_std.catalog import NOT_PROVIDED, SETTINGS_MODELS, std_executors, std_registry
from qm_nodes_std.expressions import (
    SAFE_FUNCTIONS,
    Expression,
    ExpressionError,
    ExpressionFailed,
    compile_expression,
)
from qm_nodes_std.forms import FormAnswerError, UserFormExecutor, parse_answer
from qm_nodes_std.memory_nodes import (
    FlowMemoryExecutor,
    ReadMemoryExecutor,
    UpdateMemoryExecutor,
    UserMemoryExecutor,
    WriteMemoryExecutor,
)
from qm_nodes_std.subgraphs import (
    SubAssistantExecutor,
    SubAssistantSettings,
    register_graph,
    registered_graphs,
    unregister_graph,
)
from qm_nodes_std.templates import Template, TemplateError, TemplateFailed, compile_template
from qm_nodes_std.text_nodes import (
    BlankExecutor,
    BreakExecutor,
    CommentExecutor,
    StaticExecutor,
    StaticMergeExecutor,
    TextExecutor,
    TextToVariableExecutor,
    VarExecutor,
)
from qm_nodes_std.user_nodes import UserDecisionExecutor, UserExecutor

#: Every node type the pack provides.
NODE_TYPES: tuple[str, ...] = tuple(SETTINGS_MODELS)

__all__ = [
    "NODE_TYPES",
    "NOT_PROVIDED",
    "SAFE_FUNCTIONS",
    "SETTINGS_MODELS",
    "BlankExecutor",
    "BreakExecutor",
    "CommentExecutor",
    "Expression",
    "ExpressionError",
    "ExpressionFailed",
    "FlowMemoryExecutor",
    "FormAnswerError",
    "IfExecutor",
    "ReadMemoryExecutor",
    "SettingsError",
    "StaticDecisionExecutor",
    "StaticExecutor",
    "StaticMergeExecutor",
    "StdExecutor",
    "SubAssistantExecutor",
    "SubAssistantSettings",
    "SwitchExecutor",
    "Template",
    "TemplateError",
    "TemplateFailed",
    "TextExecutor",
    "TextToVariableExecutor",
    "UpdateMemoryExecutor",
    "UserDecisionExecutor",
    "UserExecutor",
    "UserFormExecutor",
    "UserMemoryExecutor",
    "VarExecutor",
    "WriteMemoryExecutor",
    "compile_expression",
    "compile_template",
    "parse_answer",
    "register_graph",
    "registered_graphs",
    "std_executors",
    "std_registry",
    "unregister_graph",
]
