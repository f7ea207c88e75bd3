"""``chat {model}`` and ``execute_tool {name}`` spans of the LLM pack's nodes, against the
pack's scripted OpenAI-compatible server over real HTTP."""

from __future__ import annotations

import json

from fake_openai import FakeOpenAI, completion, error, streamed
from llm_support import brief_answer, line, node, openai_settings, registry
from opentelemetry.trace import SpanKind, StatusCode
from otel_support import Spans, Tree, attrs, leaf

from qm_nodes_llm import StaticTools
from quartermaster_engine import FlowRunner, FlowStatus


def one_node_flow(name: str, children: list[Tree]) -> list[Tree]:
    """The tree of a flow of graph "g": Start, the node ``name`` with ``children``, End."""
    return [("invoke_agent g", [("node Start", []), (name, children), ("node End", [])])]


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def agent_graph() -> object:
    return line(
        (
            "Agent",
            node(
                "Agent1",
                llm_model="gpt-4o-mini",
                llm_system_instruction="Use tools.",
                program_version_ids=["add"],
                max_iterations=3,
            ),
        )
    )


def script_agent(server: FakeOpenAI) -> None:
    server.reply(
        streamed([], tool_calls=[{"id": "call_1", "name": "add", "arguments": {"a": 2, "b": 3}}]),
        streamed(["The sum", " is 5."]),
    )


def test_an_llm_node_has_a_chat_span_with_models_and_token_usage(
    spans: Spans, openai_server: FakeOpenAI
) -> None:
    openai_server.reply(completion("Hi there.", model="gpt-4o-mini-2024"))
    graph = brief_answer()
    reg = registry(openai_settings(openai_server.base_url))
    result = FlowRunner(graph, reg, sinks=[spans.sink]).run("hello")
    assert result.final_output == "Hi there."

    assert spans.tree() == one_node_flow("node Answer", leaf("chat gpt-4o-mini"))
    chat = spans.one("chat gpt-4o-mini")
    assert chat.kind is SpanKind.CLIENT
    assert attrs(chat) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 64,
        "gen_ai.response.model": "gpt-4o-mini-2024",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 11,
        "gen_ai.usage.output_tokens": 7,
    }
    assert chat.status.status_code is StatusCode.UNSET


def test_an_agent_has_a_chat_span_per_turn_and_a_tool_span_between(
    spans: Spans, openai_server: FakeOpenAI
) -> None:
    script_agent(openai_server)
    reg = registry(openai_settings(openai_server.base_url), tools=StaticTools([add]))
    result = FlowRunner(agent_graph(), reg, sinks=[spans.sink]).run("What is 2 + 3?")
    assert result.final_output == "The sum is 5."

    assert spans.tree() == one_node_flow(
        "node Agent", leaf("chat gpt-4o-mini", "execute_tool add", "chat gpt-4o-mini")
    )
    tool = spans.one("execute_tool add")
    assert tool.kind is SpanKind.INTERNAL
    assert attrs(tool) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
        "gen_ai.tool.call.id": "call_1",
        "gen_ai.tool.type": "function",
    }
    first, last = sorted(spans.named("chat gpt-4o-mini"), key=lambda s: s.start_time or 0)
    assert attrs(first)["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert attrs(last)["gen_ai.response.finish_reasons"] == ["stop"]
    # Prompts and answers are content: off by default.
    assert not [k for s in spans.finished() for k in attrs(s) if "messages" in k]
    assert len({s.context.trace_id for s in spans.finished()}) == 1


def test_record_content_puts_prompts_answers_and_tool_calls_on_spans(
    openai_server: FakeOpenAI,
) -> None:
    spans = Spans(record_content=True)
    try:
        script_agent(openai_server)
        reg = registry(openai_settings(openai_server.base_url), tools=StaticTools([add]))
        FlowRunner(agent_graph(), reg, sinks=[spans.sink]).run("What is 2 + 3?")

        first, last = sorted(spans.named("chat gpt-4o-mini"), key=lambda s: s.start_time or 0)
        assert json.loads(attrs(first)["gen_ai.system_instructions"]) == [
            {"type": "text", "content": "Use tools."}
        ]
        assert json.loads(attrs(first)["gen_ai.input.messages"]) == [
            {"role": "user", "parts": [{"type": "text", "content": "What is 2 + 3?"}]}
        ]
        assert json.loads(attrs(first)["gen_ai.output.messages"]) == [
            {
                "role": "assistant",
                "parts": [
                    {
                        "type": "tool_call",
                        "id": "call_1",
                        "name": "add",
                        "arguments": {"a": 2, "b": 3},
                    }
                ],
                "finish_reason": "tool_calls",
            }
        ]
        assert json.loads(attrs(last)["gen_ai.input.messages"])[1:] == [
            {
                "role": "assistant",
                "parts": [
                    {
                        "type": "tool_call",
                        "id": "call_1",
                        "name": "add",
                        "arguments": {"a": 2, "b": 3},
                    }
                ],
            },
            {
                "role": "tool",
                "parts": [{"type": "tool_call_response", "id": "call_1", "response": "5"}],
            },
        ]
        tool = spans.one("execute_tool add")
        assert attrs(tool)["gen_ai.tool.call.arguments"] == '{"a": 2, "b": 3}'
        assert attrs(tool)["gen_ai.tool.call.result"] == "5"
    finally:
        spans.sink.close()


def test_a_failed_model_call_is_an_error_span(spans: Spans, openai_server: FakeOpenAI) -> None:
    openai_server.reply(error(400, "bad request"))
    graph = line(("Answer", node("Instruction1", llm_model="gpt-x", llm_stream=False)))
    reg = registry(openai_settings(openai_server.base_url, max_retries=0))
    result = FlowRunner(graph, reg, sinks=[spans.sink]).run("hello")
    assert result.status is FlowStatus.FAILED

    chat = spans.one("chat gpt-x")
    assert chat.status.status_code is StatusCode.ERROR
    assert chat.status.description == (f"openai at {openai_server.base_url}: HTTP 400: bad request")
    assert attrs(chat)["error.type"] == "ProviderError"
    assert "gen_ai.usage.input_tokens" not in attrs(chat)
    node_span = spans.one("node Answer")
    assert chat.parent is not None
    assert chat.parent.span_id == node_span.context.span_id
    assert attrs(node_span)["qm.node.error_strategy"] == "stop"
