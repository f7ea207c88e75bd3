"""Making one node for the builder: the field defaults of each node type, node
options versus metadata, LLM settings (``llm_<name>``), switch cases."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from quartermaster_graph.enums import MessageType, NodeType, ThoughtType, TraverseIn, TraverseOut
from quartermaster_graph.models import GraphNode, type_name

#: Keyword arguments that set `GraphNode` fields on any node method; every other
#: unknown keyword argument is stored in the node's metadata.
NODE_OPTIONS: tuple[str, ...] = (
    "error_handling",
    "max_retries",
    "retry_delay",
    "timeout",
    "traverse_in",
    "traverse_out",
    "thought_type",
    "message_type",
)

#: The structured-output node type of the LLM pack (quartermaster 0.7's name).
INSTRUCTION_FORM = "InstructionForm1"

_PICKS = {"traverse_out": TraverseOut.SPAWN_PICKED}
_USES_PREVIOUS = {"thought_type": ThoughtType.USE_PREVIOUS, "message_type": MessageType.VARIABLE}
_SKIPS = {"thought_type": ThoughtType.SKIP, "message_type": MessageType.VARIABLE}
_AWAITS_ALL = {"traverse_in": TraverseIn.AWAIT_ALL}
_ASSISTANT = {"message_type": MessageType.ASSISTANT}

# GraphNode field defaults per node type (those of quartermaster 0.1.5's builder).
# Hand-written graph files use the same table for fields they leave out.
_TYPE_DEFAULTS: dict[str, dict[str, Any]] = {
    NodeType.START.value: _SKIPS,
    NodeType.END.value: {"traverse_out": TraverseOut.SPAWN_NONE, **_SKIPS},
    NodeType.BACK.value: {"traverse_out": TraverseOut.SPAWN_START, **_SKIPS},
    NodeType.SLEEP.value: _SKIPS,
    NodeType.MAP.value: _SKIPS,
    NodeType.INSTRUCTION.value: _ASSISTANT,
    NodeType.SUMMARIZE.value: _ASSISTANT,
    NodeType.AGENT.value: _ASSISTANT,
    NodeType.INSTRUCTION_IMAGE_VISION.value: _ASSISTANT,
    NodeType.SUB_ASSISTANT.value: _ASSISTANT,
    NodeType.MERGE.value: {**_AWAITS_ALL, **_ASSISTANT},
    NodeType.STATIC_MERGE.value: _AWAITS_ALL,
    NodeType.DECISION.value: {**_PICKS, **_USES_PREVIOUS},
    NodeType.STATIC_DECISION.value: {**_PICKS, **_USES_PREVIOUS},
    NodeType.IF.value: {**_PICKS, **_USES_PREVIOUS},
    NodeType.SWITCH.value: {**_PICKS, **_USES_PREVIOUS},
    NodeType.USER_DECISION.value: {**_AWAITS_ALL, **_PICKS, **_USES_PREVIOUS},
    NodeType.USER.value: {"message_type": MessageType.USER},
    NodeType.USER_FORM.value: {"message_type": MessageType.USER},
    NodeType.VAR.value: _USES_PREVIOUS,
    NodeType.TEXT_TO_VARIABLE.value: _USES_PREVIOUS,
    NodeType.READ_MEMORY.value: _USES_PREVIOUS,
    NodeType.WRITE_MEMORY.value: _USES_PREVIOUS,
    NodeType.UPDATE_MEMORY.value: _USES_PREVIOUS,
    NodeType.FLOW_MEMORY.value: _SKIPS,
    NodeType.USER_MEMORY.value: _SKIPS,
    NodeType.COMMENT.value: _SKIPS,
    NodeType.CODE.value: _SKIPS,
    NodeType.BREAK.value: {"thought_type": ThoughtType.SKIP, "message_type": MessageType.SYSTEM},
    NodeType.PROGRAM_RUNNER.value: {"message_type": MessageType.TOOL},
}

# LLM keyword arguments that LLM node methods store as ``llm_<name>``.
_LLM_DEFAULTS: dict[str, Any] = {
    "stream": True,
    "max_output_tokens": 2048,
    "max_input_tokens": 16385,
    "vision": False,
    "thinking_level": "off",
}


def node_defaults(node_type: NodeType | str) -> dict[str, Any]:
    """The `GraphNode` field defaults the builder uses for ``node_type``.

    Empty for types without special defaults (``Static1``, custom types, ...).
    """
    return dict(_TYPE_DEFAULTS.get(type_name(node_type), {}))


def llm_metadata(
    model: str, provider: str, temperature: float, system_instruction: str, **overrides: Any
) -> dict[str, Any]:
    settings = {**_LLM_DEFAULTS, **overrides}
    return {
        "llm_model": model,
        "llm_provider": provider,
        "llm_temperature": temperature,
        "llm_system_instruction": system_instruction,
        **{f"llm_{key}": value for key, value in settings.items()},
    }


def make_node(
    node_type: NodeType | str,
    name: str,
    metadata: dict[str, Any],
    kwargs: Mapping[str, Any],
    *,
    llm: bool = False,
    fields: Mapping[str, Any] | None = None,
) -> GraphNode:
    """A node of ``node_type``: its type defaults, then node options from ``kwargs``;
    other ``kwargs`` go to metadata (LLM settings as ``llm_<name>`` when ``llm``)."""
    values: dict[str, Any] = {**node_defaults(node_type), **(fields or {})}
    for key, value in kwargs.items():
        if key in NODE_OPTIONS:
            values[key] = value
        elif llm and key in _LLM_DEFAULTS:
            metadata[f"llm_{key}"] = value
        else:
            metadata[key] = value
    try:
        return GraphNode(type=node_type, name=name, metadata=metadata, **values)
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ValueError(f"node '{name}' ({type_name(node_type)}): {problems}") from None


def normalize_cases(cases: Sequence[Mapping[str, Any]] | Mapping[str, str] | None) -> list[Any]:
    """Switch cases as ``[{"label", "expression"}]``; 0.1.5's ``edge_id`` is read as the label."""
    if cases is None:
        return []
    if isinstance(cases, Mapping):
        return [{"label": label, "expression": expr} for label, expr in cases.items()]
    normalized = []
    for index, case in enumerate(cases):
        if not isinstance(case, Mapping):
            raise ValueError(
                f"switch case {index} must be a mapping with 'label' and 'expression', got {case!r}"
            )
        label = case.get("label", case.get("edge_id", ""))
        normalized.append({"label": label, "expression": case.get("expression", "")})
    return normalized
