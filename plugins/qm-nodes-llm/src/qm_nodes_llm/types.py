"""Provider-neutral shapes of a model call: messages, tools, the request and the response.

Nodes build an `LLMRequest`; each provider turns it into its own API's request and
its answer back into an `LLMResponse`. Nothing here imports a provider SDK.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]

#: Accepted values of ``llm_thinking_level``.
THINKING_LEVELS = ("off", "minimal", "low", "medium", "high")

#: Called with each streamed text fragment.
TokenSink = Callable[[str], None]


@dataclass(slots=True)
class ToolCall:
    """A tool call the model asked for. ``arguments`` is the decoded JSON object."""

    id: str
    name: str
    arguments: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass(slots=True)
class ChatMessage:
    """One message of a prompt.

    ``tool_calls`` are set on assistant messages that called tools; ``tool_call_id``
    on the ``tool`` message carrying a call's result. ``images`` (URLs or data URLs)
    are sent only when the request has ``vision`` on.
    """

    role: Role
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    images: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ToolSpec:
    """What the model sees of a tool: its name, description and JSON-schema parameters."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(slots=True)
class JsonSchema:
    """A JSON schema the answer must satisfy (structured output)."""

    name: str
    schema: dict[str, Any]


@dataclass(slots=True)
class LLMRequest:
    """Everything a provider needs for one call.

    - ``model``: None lets the provider use its default model.
    - ``choices``: the answer must be exactly one of these strings (decisions);
      the provider constrains it (JSON schema enum, forced tool, or grammar) and
      returns the chosen string as ``LLMResponse.text``.
    - ``json_schema``: the answer must be a JSON object of this schema; the
      provider returns the JSON text as ``LLMResponse.text``.
    - ``tools`` / ``tool_choice``: tools the model may call (``"auto"``), must call
      (``"required"``) or may not call (``"none"``).
    - ``thinking_level``: ``off`` or a reasoning effort (mapped per provider).
    - ``max_input_tokens``: the window the runner cut the messages to (informative).
    """

    messages: list[ChatMessage]
    model: str | None = None
    temperature: float | None = None
    max_output_tokens: int | None = None
    max_input_tokens: int | None = None
    stream: bool = True
    thinking_level: str = "off"
    vision: bool = False
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: str = "auto"
    choices: list[str] | None = None
    json_schema: JsonSchema | None = None

    @property
    def free_text(self) -> bool:
        """True when the answer is free text (no choices, no schema). Only such an
        answer streams; a constrained one arrives whole."""
        return self.choices is None and self.json_schema is None


@dataclass(slots=True)
class LLMResponse:
    """A provider's answer: the text (or the chosen choice / JSON text) and tool calls."""

    text: str
    model: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)


class ProviderError(RuntimeError):
    """A provider call failed; the message names the provider and what went wrong."""


class ProviderUnavailableError(ProviderError):
    """A provider cannot be created here (missing extra, no API key, no model file)."""


__all__ = [
    "THINKING_LEVELS",
    "ChatMessage",
    "JsonSchema",
    "LLMRequest",
    "LLMResponse",
    "ProviderError",
    "ProviderUnavailableError",
    "Role",
    "TokenSink",
    "ToolCall",
    "ToolSpec",
]
