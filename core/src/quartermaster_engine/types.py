"""Core types: the graph model (re-exported from `quartermaster_graph`) and messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from quartermaster_graph.enums import (
    ErrorStrategy,
    MessageType,
    NodeType,
    ThoughtType,
    TraverseIn,
    TraverseOut,
)
from quartermaster_graph.models import (
    AgentGraph,
    GraphEdge,
    GraphNode,
    GraphSpec,
    NodePosition,
)

__all__ = [
    "AgentGraph",
    "ErrorStrategy",
    "GraphEdge",
    "GraphNode",
    "GraphSpec",
    "Message",
    "MessageRole",
    "MessageType",
    "NodePosition",
    "NodeType",
    "ThoughtType",
    "TraverseIn",
    "TraverseOut",
]


class MessageRole(str, Enum):
    """Role of a message in a conversation history."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"


@dataclass(slots=True)
class Message:
    """One message of a conversation history."""

    role: MessageRole
    content: str
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The message as a plain dict, leaving out empty optional fields."""
        d: dict[str, Any] = {"role": self.role.value, "content": self.content}
        if self.name:
            d["name"] = self.name
        if self.tool_call_id:
            d["tool_call_id"] = self.tool_call_id
        if self.tool_calls:
            d["tool_calls"] = self.tool_calls
        if self.metadata:
            d["metadata"] = self.metadata
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        """Inverse of `to_dict`."""
        return cls(
            role=MessageRole(data["role"]),
            content=data.get("content", ""),
            name=data.get("name"),
            tool_call_id=data.get("tool_call_id"),
            tool_calls=list(data.get("tool_calls", ())),
            metadata=dict(data.get("metadata", {})),
        )
