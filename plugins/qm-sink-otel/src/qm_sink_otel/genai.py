"""The ``chat {model}`` and ``execute_tool {name}`` spans, from the LLM pack's events
(GenAI conventions, `conventions.SEMCONV_VERSION`). Imported only when qm-nodes-llm is
installed: the sink does not need it otherwise."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind

from qm_nodes_llm.events import LLMCallFinished, LLMCallStarted, ToolCallFinished, ToolCallStarted
from qm_sink_otel import content
from qm_sink_otel import conventions as sc

if TYPE_CHECKING:
    from qm_sink_otel.nodes import NodeSpans


def handlers(spans: NodeSpans) -> dict[type, Callable[[Any], None]]:
    """Handlers of the LLM pack's events: spans under the node runs of ``spans``."""
    record = spans.record_content

    def llm_started(event: LLMCallStarted) -> None:
        spans.open_span(
            event,
            ("chat", event.call),
            sc.chat_span_name(event.model),
            SpanKind.CLIENT,
            chat_started(event, record),
        )

    def llm_finished(event: LLMCallFinished) -> None:
        spans.close_span(event, ("chat", event.call), chat_finished(event, record), event.error)

    def tool_started_(event: ToolCallStarted) -> None:
        spans.open_span(
            event,
            ("tool", event.node_id, event.call),
            sc.tool_span_name(event.tool),
            SpanKind.INTERNAL,
            tool_started(event, record),
        )

    def tool_finished_(event: ToolCallFinished) -> None:
        key = ("tool", event.node_id, event.call)
        spans.close_span(event, key, tool_finished(event, record), event.error)

    return {
        LLMCallStarted: llm_started,
        LLMCallFinished: llm_finished,
        ToolCallStarted: tool_started_,
        ToolCallFinished: tool_finished_,
    }


def chat_started(event: LLMCallStarted, record_content: bool) -> dict[str, Any]:
    """Attributes known when the call starts."""
    attrs: dict[str, Any] = {sc.OPERATION_NAME: sc.CHAT, sc.PROVIDER_NAME: event.provider}
    if event.model:
        attrs[sc.REQUEST_MODEL] = event.model
    if event.temperature is not None:
        attrs[sc.REQUEST_TEMPERATURE] = event.temperature
    if event.max_output_tokens is not None:
        attrs[sc.REQUEST_MAX_TOKENS] = event.max_output_tokens
    if event.top_p is not None:
        attrs[sc.REQUEST_TOP_P] = event.top_p
    if event.seed is not None:
        attrs[sc.REQUEST_SEED] = event.seed
    if record_content:
        instructions = content.system_instructions(event.messages)
        if instructions is not None:
            attrs[sc.SYSTEM_INSTRUCTIONS] = instructions
        attrs[sc.INPUT_MESSAGES] = content.input_messages(event.messages)
    return attrs


def chat_finished(event: LLMCallFinished, record_content: bool) -> dict[str, Any]:
    """Attributes known when the call answered or failed."""
    attrs: dict[str, Any] = {}
    if event.model:
        attrs[sc.RESPONSE_MODEL] = event.model
    if event.finish_reason:
        attrs[sc.RESPONSE_FINISH_REASONS] = [event.finish_reason]
    usage = event.usage
    if "input_tokens" in usage:
        attrs[sc.USAGE_INPUT_TOKENS] = usage["input_tokens"]
    if "output_tokens" in usage:
        attrs[sc.USAGE_OUTPUT_TOKENS] = usage["output_tokens"]
    if event.error is not None:
        attrs[sc.ERROR_TYPE] = "ProviderError"
    elif record_content:
        attrs[sc.OUTPUT_MESSAGES] = content.output_message(
            event.text, event.tool_calls, event.finish_reason
        )
    return attrs


def tool_started(event: ToolCallStarted, record_content: bool) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        sc.OPERATION_NAME: sc.EXECUTE_TOOL,
        sc.TOOL_NAME: event.tool,
        sc.TOOL_CALL_ID: event.call,
        sc.TOOL_TYPE: "function",
    }
    if record_content:
        attrs[sc.TOOL_CALL_ARGUMENTS] = content.value(event.arguments)
    return attrs


def tool_finished(event: ToolCallFinished, record_content: bool) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if event.error is not None:
        attrs[sc.ERROR_TYPE] = "ToolError"
    if record_content:
        attrs[sc.TOOL_CALL_RESULT] = content.value(event.result)
    return attrs
