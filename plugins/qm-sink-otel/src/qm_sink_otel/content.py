"""Message contents in the GenAI conventions' JSON shapes (recorded only with
``record_content`` on): ``gen_ai.system_instructions``, ``gen_ai.input.messages``,
``gen_ai.output.messages``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _text(content: str) -> list[dict[str, Any]]:
    return [{"type": "text", "content": content}] if content else []


def _tool_calls(calls: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "type": "tool_call",
            "id": call.get("id"),
            "name": call.get("name"),
            "arguments": call.get("arguments"),
        }
        for call in calls
    ]


def system_instructions(messages: Iterable[Mapping[str, Any]]) -> str | None:
    """The system messages as one instructions list, or None when there are none."""
    parts = [p for m in messages if m.get("role") == "system" for p in _text(m["content"])]
    return _json(parts) if parts else None


def input_messages(messages: Iterable[Mapping[str, Any]]) -> str:
    """The non-system messages of a prompt (``{"role", "content", ...}`` dicts)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "system":
            continue
        if role == "tool":
            part = {
                "type": "tool_call_response",
                "id": message.get("tool_call_id"),
                "response": message.get("content", ""),
            }
            out.append({"role": "tool", "parts": [part]})
            continue
        parts = _text(message.get("content", "")) + _tool_calls(message.get("tool_calls", ()))
        out.append({"role": role, "parts": parts})
    return _json(out)


def user_input(text: str) -> str:
    """A flow's input as one user message."""
    return _json([{"role": "user", "parts": _text(text)}])


def output_message(
    text: str, tool_calls: Iterable[Mapping[str, Any]] = (), finish_reason: str | None = None
) -> str:
    """An answer as one assistant message."""
    message: dict[str, Any] = {"role": "assistant", "parts": _text(text) + _tool_calls(tool_calls)}
    if finish_reason:
        message["finish_reason"] = finish_reason
    return _json([message])


def value(data: Any) -> str:
    """Tool arguments or results as JSON text (a string stays as it is)."""
    return data if isinstance(data, str) else _json(data)
