"""Events of the LLM nodes: tool calls of Agent1 nodes.

They are `FlowEvent` subclasses, so they reach ``on_event``, ``run_async`` iterators
and event sinks like the engine's own, with the flow's sequence numbers, and
``event_from_dict`` reads them back once this module is imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from quartermaster_engine import ExecutionContext, FlowEvent

_NO_NODE = UUID(int=0)


@dataclass(slots=True)
class ToolCallStarted(FlowEvent):
    """An Agent1 node calls a tool (``call`` is the model's id of the call)."""

    node_id: UUID = _NO_NODE
    node_name: str = ""
    tool: str = ""
    call: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    iteration: int = 1


@dataclass(slots=True)
class ToolCallFinished(FlowEvent):
    """A tool call returned (``result``) or failed (``error``; the model is told)."""

    node_id: UUID = _NO_NODE
    node_name: str = ""
    tool: str = ""
    call: str = ""
    result: str = ""
    error: str | None = None
    duration_seconds: float = 0.0


def emit_event(context: ExecutionContext, event: FlowEvent) -> None:
    """Send ``event`` to the flow's listeners (safe from worker threads); nothing
    happens for a context not made by a runner."""
    context.emit(event)
