"""The ``openai`` provider: any OpenAI-compatible Chat Completions endpoint, through the
official ``openai`` SDK (OpenAI, Ollama's ``/v1``, vLLM, llama.cpp server, LM Studio).

Also the ``ollama`` provider: the same client pointed at an Ollama server's ``/v1``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from qm_nodes_llm.providers.base import HostedSettings
from qm_nodes_llm.providers.common import (
    CHOICE_FIELD,
    CHOICE_TOOL,
    PerLoop,
    choice_schema,
    decode_arguments,
    extract_choice,
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
    from openai import AsyncOpenAI

#: The model used when neither the node nor the settings name one.
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
OPENAI_HOST = "api.openai.com"


class OpenAISettings(HostedSettings):
    """Settings of the ``openai`` provider (``providers.openai`` of an LLM node type): the
    endpoint (e.g. ``http://localhost:11434/v1``) defaults to ``$OPENAI_BASE_URL``, else
    OpenAI; the key to ``$OPENAI_API_KEY`` (endpoints other than OpenAI's may need none).
    Retries cover 408/409/429/5xx answers and lost connections."""

    #: How a decision is constrained: a strict JSON schema whose ``choice`` is an enum
    #: of the labels, or a forced ``choose`` tool call with that enum.
    decision_mode: Literal["json_schema", "tool"] = "json_schema"
    #: The output-length field: ``max_completion_tokens`` (OpenAI's current name,
    #: needed by its reasoning models), ``max_tokens`` (what most compatible servers
    #: read), or ``auto``: the first for OpenAI's own endpoint, else the second.
    max_tokens_field: Literal["auto", "max_tokens", "max_completion_tokens"] = "auto"
    #: Extra HTTP headers sent with every request.
    headers: dict[str, str] = Field(default_factory=dict)


class OpenAIProvider:
    """Chat Completions through ``openai.AsyncOpenAI`` (one client per event loop)."""

    def __init__(self, settings: OpenAISettings, *, name: str = "openai") -> None:
        self.name = name
        self.settings = settings
        self.base_url = settings.base_url or os.environ.get("OPENAI_BASE_URL") or None
        key = secret(settings.api_key) or os.environ.get("OPENAI_API_KEY")
        if not key:
            if self.base_url is None or OPENAI_HOST in self.base_url:
                raise ProviderUnavailableError(
                    f"LLM provider {name!r} has no API key: set OPENAI_API_KEY or the "
                    f"setting providers.{name}.api_key (or point base_url / OPENAI_BASE_URL "
                    "at a server that needs none)"
                )
            key = "not-needed"  # compatible local servers ignore it; the SDK wants one
        self._api_key = key
        self._clients: PerLoop[AsyncOpenAI] = PerLoop(self._make_client)
        field = settings.max_tokens_field
        if field == "auto":
            official = self.base_url is None or OPENAI_HOST in self.base_url
            field = "max_completion_tokens" if official else "max_tokens"
        self.max_tokens_field = field

    def _make_client(self) -> AsyncOpenAI:
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            api_key=self._api_key,
            base_url=self.base_url,
            timeout=self.settings.timeout,
            max_retries=self.settings.max_retries,
            default_headers=self.settings.headers or None,
        )

    def describe(self) -> str:
        return f"{self.name} at {self.base_url or 'https://' + OPENAI_HOST + '/v1'}"

    def default_model(self) -> str | None:
        return self.settings.model or DEFAULT_OPENAI_MODEL

    # -- request --------------------------------------------------------------

    def request_body(self, request: LLMRequest) -> dict[str, Any]:
        """The Chat Completions body for ``request`` (what goes over the wire)."""
        body: dict[str, Any] = {
            "model": request.model or self.default_model(),
            "messages": [_message(m, request.vision) for m in request.messages],
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_output_tokens is not None:
            body[self.max_tokens_field] = request.max_output_tokens
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop"] = list(request.stop)
        if request.seed is not None:
            body["seed"] = request.seed
        if request.thinking_level != "off":
            body["reasoning_effort"] = request.thinking_level
        if request.choices is not None:
            schema = choice_schema(request.choices)
            if self.settings.decision_mode == "tool":
                body["tools"] = [_function(CHOICE_TOOL, "Give your answer.", schema)]
                body["tool_choice"] = {"type": "function", "function": {"name": CHOICE_TOOL}}
            else:
                body["response_format"] = _schema_format("decision", schema)
        elif request.json_schema is not None:
            body["response_format"] = _schema_format(
                request.json_schema.name, request.json_schema.schema
            )
        if request.tools:
            body["tools"] = [_function(t.name, t.description, t.parameters) for t in request.tools]
            body["tool_choice"] = request.tool_choice
        if request.stream:
            body["stream"] = True
        return body

    async def complete(
        self,
        request: LLMRequest,
        on_token: TokenSink | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> LLMResponse:
        import openai

        body = self.request_body(request)
        client = self._clients.get()
        try:
            if body.get("stream"):
                response = await self._stream(client, body, on_token)
            else:
                response = await self._once(client, body)
        except openai.APITimeoutError:
            raise ProviderError(
                f"{self.describe()}: the request timed out after "
                f"{self.settings.timeout:g} s (retried {self.settings.max_retries} times)"
            ) from None
        except openai.APIConnectionError as exc:
            raise ProviderError(f"{self.describe()}: cannot connect: {exc}") from None
        except openai.APIStatusError as exc:
            raise ProviderError(
                f"{self.describe()}: HTTP {exc.status_code}: {_error_message(exc)}"
                + (
                    f" (after {self.settings.max_retries} retries)"
                    if exc.status_code == 429 or exc.status_code >= 500
                    else ""
                )
            ) from None
        return self._constrained(request, response)

    def _constrained(self, request: LLMRequest, response: LLMResponse) -> LLMResponse:
        if request.choices is None:
            return response
        if self.settings.decision_mode == "tool":
            for call in response.tool_calls:
                if call.name == CHOICE_TOOL and isinstance(call.arguments.get(CHOICE_FIELD), str):
                    response.text = str(call.arguments[CHOICE_FIELD])
                    break
            response.tool_calls = []
            return response
        response.text = extract_choice(response.text)
        return response

    async def _once(self, client: AsyncOpenAI, body: dict[str, Any]) -> LLMResponse:
        completion = await client.chat.completions.create(**body)
        if not completion.choices:
            raise ProviderError(f"{self.describe()}: the answer has no choices")
        choice = completion.choices[0]
        message = choice.message
        calls = [
            ToolCall(
                id=call.id,
                name=call.function.name,
                arguments=decode_arguments(call.function.arguments),
            )
            for call in (message.tool_calls or [])
            if getattr(call, "function", None) is not None
        ]
        usage = completion.usage
        return LLMResponse(
            text=message.content or "",
            model=completion.model or str(body["model"]),
            tool_calls=calls,
            finish_reason=choice.finish_reason,
            usage=_usage(usage),
        )

    async def _stream(
        self, client: AsyncOpenAI, body: dict[str, Any], on_token: TokenSink | None
    ) -> LLMResponse:
        parts: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        finish: str | None = None
        model = str(body["model"])
        usage: dict[str, int] = {}
        stream = await client.chat.completions.create(**body)
        try:
            async for chunk in stream:
                if chunk.model:
                    model = chunk.model
                if chunk.usage is not None:
                    usage = _usage(chunk.usage)
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                if choice.finish_reason:
                    finish = choice.finish_reason
                delta = choice.delta
                if delta is None:
                    continue
                if delta.content:
                    parts.append(delta.content)
                    if on_token is not None:
                        on_token(delta.content)
                for call in delta.tool_calls or ():
                    slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                    if call.id:
                        slot["id"] = call.id
                    if call.function is not None:
                        if call.function.name:
                            slot["name"] += call.function.name
                        if call.function.arguments:
                            slot["arguments"] += call.function.arguments
        finally:
            # Closing the stream closes the HTTP response: a cancelled node stops
            # reading at once instead of draining the answer.
            await stream.close()
        tool_calls = [
            ToolCall(id=s["id"], name=s["name"], arguments=decode_arguments(s["arguments"]))
            for _, s in sorted(calls.items())
        ]
        return LLMResponse(
            text="".join(parts),
            model=model,
            tool_calls=tool_calls,
            finish_reason=finish,
            usage=usage,
        )


def _message(message: ChatMessage, vision: bool) -> dict[str, Any]:
    if message.role == "tool":
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id or "",
            "content": message.content,
        }
    out: dict[str, Any] = {"role": message.role}
    if vision and message.images and message.role == "user":
        out["content"] = [
            {"type": "text", "text": message.content},
            *({"type": "image_url", "image_url": {"url": url}} for url in message.images),
        ]
    else:
        out["content"] = message.content
    if message.tool_calls:
        out["content"] = message.content or None
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in message.tool_calls
        ]
    if message.name:
        out["name"] = message.name
    return out


def _function(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def _schema_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}


def _usage(usage: Any) -> dict[str, int]:
    if usage is None:
        return {}
    return {
        "input_tokens": int(getattr(usage, "prompt_tokens", 0) or 0),
        "output_tokens": int(getattr(usage, "completion_tokens", 0) or 0),
    }


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return str(getattr(exc, "message", exc))


def create_openai(settings: OpenAISettings) -> OpenAIProvider:
    """Any OpenAI-compatible Chat Completions endpoint (official openai SDK)."""
    return OpenAIProvider(settings)
