"""The messages the engine adds to a node's input: its system instruction and its input message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from quartermaster_engine.types import Message, MessageRole, MessageType


def system_message(metadata: Mapping[str, Any]) -> Message | None:
    """The node's system instruction (``llm_system_instruction`` or ``system_instruction``)."""
    text = metadata.get("llm_system_instruction") or metadata.get("system_instruction")
    return Message(MessageRole.SYSTEM, str(text)) if text else None


def input_message(
    message_type: MessageType,
    metadata: Mapping[str, Any],
    user_text: str,
    memory: Mapping[str, Any],
) -> Message | None:
    """The input message a node's MessageType adds, or None.

    USER: ``user_text`` (the flow input, or the person's answer on resume).
    VARIABLE: the flow-memory value named by metadata ``variable_name``.
    ASSISTANT: metadata ``assistant_message``. AUTOMATIC, SYSTEM, TOOL: none.
    """
    if message_type == MessageType.USER:
        return Message(MessageRole.USER, user_text)
    if message_type == MessageType.VARIABLE:
        name = metadata.get("variable_name")
        if name:
            value = memory.get(name, "")
            return Message(MessageRole.USER, value if isinstance(value, str) else str(value))
        return None
    if message_type == MessageType.ASSISTANT:
        text = metadata.get("assistant_message")
        return Message(MessageRole.ASSISTANT, str(text)) if text else None
    return None
