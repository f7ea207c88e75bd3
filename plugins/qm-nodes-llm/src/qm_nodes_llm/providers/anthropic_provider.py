"""The ``anthropic`` provider: Claude models through the official ``anthropic`` SDK
(optional extra: ``pip install "qm-nodes-llm[anthropic]"``)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from qm_nodes_llm.providers.base import HostedSettings
from qm_nodes_llm.providers.common import (
    CHOICE_FIELD,
    CHOICE_TOOL,
    PerLoop,
    choice_schema,
    secret,
)
from qm_nodes_llm.types import (
    ChatMessage,
    LLMRequest,
    LLMResponse,
    ProviderError,
    ProviderUnavailableError,
    TokenSink,
    ToolCall,
)

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

DEFAULT_ANTHROPIC_MODEL = "claude-haiku-4-5"
#: Anthropic requires max_tokens; used when the node sets no llm_max_output_tokens.
DEFAULT_MAX_TOKENS = 4096
#: Thinking budget (tokens) per ``llm_thinking_level``.
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
RESPOND_TOOL = "respond"


class AnthropicSettings(HostedSettings):
    """Settings of the ``anthropic`` provider (``providers.anthropic`` of an LLM node type):
    the key defaults to ``$ANTHROPIC_API_KEY``, the endpoint to ``$ANTHROPIC_BASE_URL``,
    else Anthropic's API."""


class AnthropicProvider:
    """The Messages API through ``anthropic.AsyncAnthropic`` (one client per event loop)."""

    name = "anthropic"

    def __init__(self, settings: AnthropicSettings) -> None:
        try:
            import anthropic  # noqa: F401
        except ImportError:
            raise ProviderUnavailableError(
                'LLM provider "anthropic" needs its extra: pip install "qm-nodes-llm[anthropic]"'
            ) from None
        key = secret(settings.api_key) or os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise ProviderUnavailableError(
                'LLM provider "anthropic" has no API key: set ANTHROPIC_API_KEY or the '
                "setting providers.anthropic.api_key"
            )
        self.settings = settings
        self._api_key = key
        self.base_url = settings.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        self._clients: PerLoop[AsyncAnthropic] = PerLoop(self._make_client)

    def _make_client(self) -> AsyncAnthropic:
        from anthropic import AsyncAnthropic

        return AsyncAnthropic(
            api_key=self._api_key,
            base_url=self.base_url,
            timeout=self.settings.timeout,
            max_retries=self.settings.max_retries,
        )

    def describe(self) -> str:
        return f"anthropic at {self.base_url or 'https://api.anthropic.com'}"

    def default_model(self) -> str | None:
        return self.settings.model or DEFAULT_ANTHROPIC_MODEL

    def request_body(self, request: LLMRequest) -> dict[str, Any]:
        """The Messages API body for ``request``."""
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        max_tokens = request.max_output_tokens or DEFAULT_MAX_TOKENS
        body: dict[str, Any] = {
            "model": request.model or self.default_model(),
            "messages": _messages(request.messages, request.vision),
            "max_tokens": max_tokens,
        }
        if system:
            body["system"] = system
        forced: dict[str, Any] | None = None
        tools: list[dict[str, Any]] = []
        if request.choices is not None:
            tools.append(_tool(CHOICE_TOOL, "Give your answer.", choice_schema(request.choices)))
            forced = {"type": "tool", "name": CHOICE_TOOL}
        elif request.json_schema is not None:
            tools.append(_tool(RESPOND_TOOL, "Give your answer.", request.json_schema.schema))
            forced = {"type": "tool", "name": RESPOND_TOOL}
        tools.extend(_tool(t.name, t.description, t.parameters) for t in request.tools)
        if tools:
            body["tools"] = tools
            if forced is not None:
                body["tool_choice"] = forced
            else:
                body["tool_choice"] = {
                    "type": {"required": "any"}.get(request.tool_choice, request.tool_choice)
                }
        # Extended thinking cannot be combined with a forced tool, and fixes the temperature.
        thinking = THINKING_BUDGETS.get(request.thinking_level) if forced is None else None
        if thinking is not None:
            body["thinking"] = {"type": "enabled", "budget_tokens": thinking}
            body["max_tokens"] = max_tokens + thinking
        elif request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None and thinking is None:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        return body

    async def complete(
        self,
        request: LLMRequest,
        on_token: TokenSink | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> LLMResponse:
        import anthropic

        body = self.request_body(request)
        client = self._clients.get()
        try:
            if request.stream:
                async with client.messages.stream(**body) as stream:
                    async for text in stream.text_stream:
                        if on_token is not None:
                            on_token(text)
                    message = await stream.get_final_message()
            else:
                message = await client.messages.create(**body)
        except anthropic.APITimeoutError:
            raise ProviderError(
                f"{self.describe()}: the request timed out after {self.settings.timeout:g} s"
            ) from None
        except anthropic.APIConnectionError as exc:
            raise ProviderError(f"{self.describe()}: cannot connect: {exc}") from None
        except anthropic.APIStatusError as exc:
            raise ProviderError(
                f"{self.describe()}: HTTP {exc.status_code}: {exc.message}"
            ) from None
        return _response(request, message, str(body["model"]))


def _response(request: LLMRequest, message: Any, model: str) -> LLMResponse:
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in message.content:
        kind = getattr(block, "type", "")
        if kind == "text":
            texts.append(block.text)
        elif kind == "tool_use":
            args = block.input if isinstance(block.input, dict) else {"_raw": block.input}
            calls.append(ToolCall(id=block.id, name=block.name, arguments=dict(args)))
    text = "".join(texts)
    if request.choices is not None:
        chosen = next((c for c in calls if c.name == CHOICE_TOOL), None)
        if chosen is not None and isinstance(chosen.arguments.get(CHOICE_FIELD), str):
            text = str(chosen.arguments[CHOICE_FIELD])
        calls = []
    elif request.json_schema is not None:
        chosen = next((c for c in calls if c.name == RESPOND_TOOL), None)
        if chosen is not None:
            text = json.dumps(chosen.arguments, ensure_ascii=False)
        calls = []
    usage = getattr(message, "usage", None)
    return LLMResponse(
        text=text,
        model=getattr(message, "model", None) or model,
        tool_calls=calls,
        finish_reason=getattr(message, "stop_reason", None),
        usage={
            "input_tokens": int(getattr(usage, "input_tokens", 0) or 0),
            "output_tokens": int(getattr(usage, "output_tokens", 0) or 0),
        }
        if usage is not None
        else {},
    )


def _tool(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "description": description, "input_schema": schema}


def _messages(messages: list[ChatMessage], vision: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": m.tool_call_id or "",
                "content": m.content,
            }
            out.append({"role": "user", "content": [block]})
            continue
        content: list[dict[str, Any]] = []
        if m.content:
            content.append({"type": "text", "text": m.content})
        if vision and m.role == "user":
            content.extend(
                {"type": "image", "source": {"type": "url", "url": url}} for url in m.images
            )
        content.extend(
            {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
            for c in m.tool_calls
        )
        out.append({"role": m.role, "content": content or [{"type": "text", "text": ""}]})
    return out


def create_anthropic(settings: AnthropicSettings) -> AnthropicProvider:
    """Claude models through the official anthropic SDK (extra ``anthropic``)."""
    return AnthropicProvider(settings)
