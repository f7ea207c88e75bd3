"""The LLM node executors."""

from typing import Any

from qm_nodes_llm.nodes.agent import AgentExecutor
from qm_nodes_llm.nodes.base import Binding, LLMExecutor, NodeFailure
from qm_nodes_llm.nodes.decision import DecisionExecutor
from qm_nodes_llm.nodes.form import InstructionFormExecutor
from qm_nodes_llm.nodes.parameters import InstructionParametersExecutor
from qm_nodes_llm.nodes.text import InstructionExecutor, MergeExecutor, SummarizeExecutor

#: Every executor class of the pack, in registration order.
EXECUTORS: tuple[type[LLMExecutor[Any]], ...] = (
    InstructionExecutor,
    SummarizeExecutor,
    DecisionExecutor,
    AgentExecutor,
    InstructionParametersExecutor,
    InstructionFormExecutor,
    MergeExecutor,
)
#: The node types the pack provides.
LLM_NODE_TYPES: tuple[str, ...] = tuple(cls.node_type for cls in EXECUTORS)

__all__ = [
    "EXECUTORS",
    "LLM_NODE_TYPES",
    "AgentExecutor",
    "Binding",
    "DecisionExecutor",
    "InstructionExecutor",
    "InstructionFormExecutor",
    "InstructionParametersExecutor",
    "LLMExecutor",
    "MergeExecutor",
    "NodeFailure",
    "SummarizeExecutor",
]
