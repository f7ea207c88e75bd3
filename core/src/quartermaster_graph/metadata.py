"""Typed metadata schemas per node type (quartermaster-graph 0.1.5's ``metadata`` module).

A node's ``metadata`` stays a plain dict in the graph model and in graph files;
these pydantic models describe the keys the builder writes for each type, with the
builder's defaults, so code can read a node's settings typed:
``validate_metadata(node.type, node.metadata)``. Unknown keys are ignored (node
packs and users may add their own), and types without a schema give None.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from quartermaster_graph.enums import NodeType
from quartermaster_graph.models import type_name


class NodeMetadata(BaseModel):
    """Base of the schemas: extra keys are ignored, not errors."""

    model_config = ConfigDict(extra="ignore")


class LLMMetadata(NodeMetadata):
    """LLM settings, the base of every LLM node's schema. An empty ``llm_model`` /
    ``llm_provider`` means the LLM pack's configured default."""

    llm_system_instruction: str = ""
    llm_model: str = ""
    llm_provider: str = ""
    llm_temperature: float = 0.5
    llm_max_output_tokens: int = 2048
    llm_max_input_tokens: int = 16385
    llm_stream: bool = True
    llm_vision: bool = False
    llm_thinking_level: str = "off"


class InstructionMetadata(LLMMetadata):
    """Instruction1."""


class SummarizeMetadata(InstructionMetadata):
    """Summarize1."""


class MergeMetadata(InstructionMetadata):
    """Merge1: an LLM combines the branches' outputs."""


class VisionMetadata(InstructionMetadata):
    """InstructionImageVision1."""

    llm_vision: bool = True


class AgentMetadata(InstructionMetadata):
    """Agent1: an LLM loop over tools."""

    program_version_ids: list[str] = []
    max_iterations: int = 25


class DecisionMetadata(InstructionMetadata):
    """Decision1: the LLM picks one of ``options``."""

    llm_stream: bool = False
    prefix_message: str = ""
    suffix_message: str = ""
    options: list[str] = []


class IfMetadata(NodeMetadata):
    """If1."""

    if_expression: str = ""


class StaticDecisionMetadata(NodeMetadata):
    """StaticDecision1."""

    expression: str = ""


class UserDecisionMetadata(NodeMetadata):
    """UserDecision1: the user picks the branch; it has no settings of its own."""


class SwitchMetadata(NodeMetadata):
    """Switch1: ``cases`` as ``[{"label", "expression"}]`` (0.1.5 wrote ``edge_id``)."""

    cases: list[dict[str, Any]] = []
    default: str = ""


class CodeMetadata(NodeMetadata):
    """Code1."""

    code: str = ""
    filename: str = ""


class ProgramRunnerMetadata(NodeMetadata):
    """ProgramRunner1."""

    program: str = ""


class StaticMetadata(NodeMetadata):
    """Static1."""

    static_text: str = ""


class StaticMergeMetadata(StaticMetadata):
    """StaticMerge1."""


class TextMetadata(NodeMetadata):
    """Text1: a template."""

    text: str = ""


class VarMetadata(NodeMetadata):
    """Var1: ``name`` is the variable set to ``expression``."""

    name: str = ""
    expression: str = ""


class TextToVariableMetadata(NodeMetadata):
    """TextToVariable1."""

    variable: str = ""
    source: str = ""


class UserMetadata(NodeMetadata):
    """User1: ``timeout`` (a duration) is the deadline of the wait, counted from when
    the node starts waiting; once it passes unanswered the node is answered with
    ``on_timeout``, or takes its outgoing edge labelled ``on_timeout_edge``."""

    text_snippets: list[str] = []
    timeout: str | float | None = None
    on_timeout: str | None = None
    on_timeout_edge: str | None = None


class UserFormMetadata(NodeMetadata):
    """UserForm1: field definitions (see `quartermaster_graph.fields`)."""

    parameters: list[dict[str, Any]] = []


class MemoryMetadata(NodeMetadata):
    """The base of ReadMemory1, WriteMemory1 and UpdateMemory1."""

    memory_name: str = ""
    memory_type: str = "flow"
    variable_names: list[str] = []
    variables: list[dict[str, Any]] = []


class ReadMemoryMetadata(MemoryMetadata):
    """ReadMemory1."""


class WriteMemoryMetadata(MemoryMetadata):
    """WriteMemory1."""


class UpdateMemoryMetadata(MemoryMetadata):
    """UpdateMemory1."""


class MemoryDefinitionMetadata(NodeMetadata):
    """FlowMemory1 and UserMemory1."""

    memory_name: str = ""
    initial_data: list[dict[str, Any]] = []


class FlowMemoryMetadata(MemoryDefinitionMetadata):
    """FlowMemory1."""


class UserMemoryMetadata(MemoryDefinitionMetadata):
    """UserMemory1."""


class SubAssistantMetadata(NodeMetadata):
    """SubAssistant1: ``graph`` is the sub-graph's file (or id)."""

    graph: str = ""
    sub_assistant_id: str = ""


class CommentMetadata(NodeMetadata):
    """Comment1."""

    comment: str = ""


class BackMetadata(NodeMetadata):
    """Back1: ``max_iterations`` loops back to Start at most (None: the runner's
    visit limit)."""

    max_iterations: int | None = None


class SleepMetadata(NodeMetadata):
    """Sleep1: wait ``duration`` (``"90s"``, ``"10m"``, ``"24h"``, or seconds) or until
    ``until`` (an ISO 8601 time with a zone), then pass on what reached it."""

    duration: str | float | None = None
    until: str | None = None


class MapMetadata(NodeMetadata):
    """Map1: run the node ``node`` (its id or name) once per item of the list that the
    expression ``items`` gives, at most ``max_concurrency`` at once; ``on_item_error``
    is ``fail``, ``skip`` or ``collect`` (docs/map.md)."""

    items: str = ""
    node: str = ""
    max_concurrency: int = 8
    on_item_error: str = "fail"


class BreakMetadata(NodeMetadata):
    """Break1."""

    break_targets: list[str] = []


#: The schema of each node type that has one.
METADATA_SCHEMAS: dict[str, type[NodeMetadata]] = {
    NodeType.INSTRUCTION.value: InstructionMetadata,
    NodeType.SUMMARIZE.value: SummarizeMetadata,
    NodeType.MERGE.value: MergeMetadata,
    NodeType.INSTRUCTION_IMAGE_VISION.value: VisionMetadata,
    NodeType.AGENT.value: AgentMetadata,
    NodeType.DECISION.value: DecisionMetadata,
    NodeType.IF.value: IfMetadata,
    NodeType.STATIC_DECISION.value: StaticDecisionMetadata,
    NodeType.SWITCH.value: SwitchMetadata,
    NodeType.USER_DECISION.value: UserDecisionMetadata,
    NodeType.CODE.value: CodeMetadata,
    NodeType.PROGRAM_RUNNER.value: ProgramRunnerMetadata,
    NodeType.STATIC.value: StaticMetadata,
    NodeType.STATIC_MERGE.value: StaticMergeMetadata,
    NodeType.TEXT.value: TextMetadata,
    NodeType.VAR.value: VarMetadata,
    NodeType.TEXT_TO_VARIABLE.value: TextToVariableMetadata,
    NodeType.USER.value: UserMetadata,
    NodeType.USER_FORM.value: UserFormMetadata,
    NodeType.READ_MEMORY.value: ReadMemoryMetadata,
    NodeType.WRITE_MEMORY.value: WriteMemoryMetadata,
    NodeType.UPDATE_MEMORY.value: UpdateMemoryMetadata,
    NodeType.FLOW_MEMORY.value: FlowMemoryMetadata,
    NodeType.USER_MEMORY.value: UserMemoryMetadata,
    NodeType.SUB_ASSISTANT.value: SubAssistantMetadata,
    NodeType.COMMENT.value: CommentMetadata,
    NodeType.BREAK.value: BreakMetadata,
    NodeType.BACK.value: BackMetadata,
    NodeType.SLEEP.value: SleepMetadata,
    NodeType.MAP.value: MapMetadata,
}


def get_metadata_class(node_type: NodeType | str) -> type[NodeMetadata] | None:
    """The schema of ``node_type``, or None (Start1, End1, Blank1, custom types)."""
    return METADATA_SCHEMAS.get(type_name(node_type))


def validate_metadata(node_type: NodeType | str, metadata: dict[str, Any]) -> NodeMetadata | None:
    """``metadata`` read through the schema of ``node_type`` (defaults filled in,
    unknown keys ignored); None for types without a schema. Raises pydantic's
    ``ValidationError`` (a ``ValueError``) naming each bad key."""
    schema = get_metadata_class(node_type)
    return None if schema is None else schema.model_validate(metadata)
