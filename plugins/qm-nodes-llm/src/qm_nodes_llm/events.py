"""Events of the LLM nodes: model calls of every LLM node, tool calls of Agent1 nodes.

The tool-call events are the engine's (`quartermaster_engine.ToolCallStarted`,
`ToolCallFinished`), re-exported here, so that any executor can emit them.

They are `FlowEvent` subclasses, so they reach ``on_event``, ``run_async`` iterators
and event sinks like the engine's own, with the flow's sequence numbers, and
``event_from_dict`` reads them back once this module is imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from quartermaster_engine import ExecutionContext, FlowEvent, ToolCallFinished, ToolCallStarted

_NO_NODE = UUID(int=0)


@dataclass(slots=True)
class LLMCallStarted(FlowEvent):
    """An LLM node calls its model. ``call`` pairs it with its `LLMCallFinished` (unique
    in this process); ``model`` is the requested model ("" for the provider's default);
    ``messages`` are the prompt as ``{"role", "content"}`` dicts (plus ``tool_calls`` /
    ``tool_call_id`` where set); ``tools`` the names of the tools offered."""

    node_id: UUID = _NO_NODE
    node_name: str = ""
    call: int = 0
    provider: str = ""
    model: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    temperature: float | None = None
    max_output_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stream: bool = True

    def summary(self) -> str | None:
        return None  # the answer streams, and LLMCallFinished sums the call up


@dataclass(slots=True)
class LLMCallFinished(FlowEvent):
    """A model call answered, or failed (``error``: the provider's message). ``model`` is
    the model that answered; ``usage`` the provider's token counts (``input_tokens``,
    ``output_tokens``, ...); ``text`` and ``tool_calls`` what the model answered."""

    node_id: UUID = _NO_NODE
    node_name: str = ""
    call: int = 0
    provider: str = ""
    model: str = ""
    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    duration_seconds: float = 0.0

    def summary(self) -> str | None:
        if self.error is not None:
            return f"{self.node_name}: {self.provider} call failed: {self.error}"
        tokens = ""
        if "input_tokens" in self.usage and "output_tokens" in self.usage:
            tokens = f", {self.usage['input_tokens']} → {self.usage['output_tokens']} tokens"
        return f"{self.node_name}: {self.model or self.provider}{tokens}"


def emit_event(context: ExecutionContext, event: FlowEvent) -> None:
    """Send ``event`` to the flow's listeners (safe from worker threads); nothing
    happens for a context not made by a runner."""
    context.emit(event)


__all__ = [
    "LLMCallFinished",
    "LLMCallStarted",
    "ToolCallFinished",
    "ToolCallStarted",
    "emit_event",
]
