"""The node types of the pack: one executor class per type, and the 0.1.5 types it
leaves out, with why."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from qm_nodes_std.base import StdExecutor
from qm_nodes_std.branching import IfExecutor, StaticDecisionExecutor, SwitchExecutor
from qm_nodes_std.forms import UserFormExecutor
from qm_nodes_std.map_items import MapItemsExecutor
from qm_nodes_std.memory_nodes import (
    FlowMemoryExecutor,
    ReadMemoryExecutor,
    UpdateMemoryExecutor,
    UserMemoryExecutor,
    WriteMemoryExecutor,
)
from qm_nodes_std.subgraphs import SubAssistantExecutor, SubAssistantSettings
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
from quartermaster_engine import SimpleNodeRegistry
from quartermaster_engine.control_nodes import control_executors
from quartermaster_engine.plugins import NoSettings

#: Executor classes that take no settings, in the order the pack registers them.
SIMPLE_EXECUTORS: tuple[type[StdExecutor[Any]], ...] = (
    StaticExecutor,
    TextExecutor,
    VarExecutor,
    TextToVariableExecutor,
    BlankExecutor,
    CommentExecutor,
    BreakExecutor,
    IfExecutor,
    SwitchExecutor,
    StaticDecisionExecutor,
    StaticMergeExecutor,
    WriteMemoryExecutor,
    ReadMemoryExecutor,
    UpdateMemoryExecutor,
    FlowMemoryExecutor,
    UserMemoryExecutor,
    UserExecutor,
    UserDecisionExecutor,
    UserFormExecutor,
    MapItemsExecutor,
)

#: Every node type the pack provides, with its settings model.
SETTINGS_MODELS: dict[str, type[BaseModel]] = {
    **{cls.node_type: NoSettings for cls in SIMPLE_EXECUTORS},
    SubAssistantExecutor.node_type: SubAssistantSettings,
}

#: Node types of quartermaster 0.1.5 that are not LLM nodes and that this pack does
#: not provide, with the reason.
NOT_PROVIDED: dict[str, str] = {
    "Code1": "it runs arbitrary code; there is no sandbox here that makes that safe",
    "ProgramRunner1": "it runs programs and tools; that belongs to a tool-runtime pack "
    "with an explicit allow-list, not to a pack every flow installs",
    "StaticProgramParameters1": "it only feeds parameters to program nodes, "
    "which this pack does not run",
    "UserProgramForm1": "a form for program parameters, which this pack does not run",
    "UseEnvironment1": "it selects one of 0.1.5's hosted runtime environments, "
    "which have no local equivalent",
    "UnselectEnvironment1": "the counterpart of UseEnvironment1",
    "UseFile1": "it attaches a file of 0.1.5's hosted file store, which has no local equivalent",
    "ViewMetadata1": "a designer view of a node's metadata; it does nothing at run time",
}


def std_executors(settings: SubAssistantSettings | None = None) -> dict[str, StdExecutor[Any]]:
    """A fresh executor for each node type of the pack, by node type.

    ``settings`` configure SubAssistant1 (search path and named graphs).
    Use it without plugin discovery: ``SimpleNodeRegistry(std_executors())``.
    """
    executors: dict[str, StdExecutor[Any]] = {cls.node_type: cls() for cls in SIMPLE_EXECUTORS}
    others = dict(executors)
    executors[SubAssistantExecutor.node_type] = SubAssistantExecutor(settings, validators=others)
    return executors


def std_registry(settings: SubAssistantSettings | None = None) -> SimpleNodeRegistry:
    """A registry of the engine's Start1 and End1 and every node type of the pack: enough
    to run any graph of non-LLM nodes without plugin discovery."""
    return SimpleNodeRegistry({**control_executors(), **std_executors(settings)})


def description(cls: type[Any]) -> str:
    """The first sentence of an executor's docstring as plain text, for ``qm plugins``."""
    paragraph = (cls.__doc__ or "").strip().split("\n\n")[0]
    text = " ".join(paragraph.split()).replace("``", "")
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]
