"""The ``openai`` provider over real HTTP: the official SDK against a loopback
OpenAI-compatible server. Request bodies are asserted exactly."""

from __future__ import annotations

import json
import threading
from typing import Any

from fake_openai import FakeOpenAI, Reply, completion, error, streamed
from llm_support import Recorder, graph, line, nid, node, openai_settings, registry, runner

from qm_nodes_llm import StaticTools, ToolCallFinished, ToolCallStarted
from quartermaster_engine import (
    FlowError,
    FlowStatus,
    NodeFinished,
    NodeRetrying,
    NodeStarted,
    TokenGenerated,
)

EVERY_KEY = {
    "llm_model": "gpt-test",
    "llm_provider": "openai",
    "llm_temperature": 0.2,
    "llm_system_instruction": "Be brief.",
    "llm_stream": True,
    "llm_max_output_tokens": 64,
    "llm_max_input_tokens": 1000,
    "llm_vision": False,
    "llm_thinking_level": "low",
    "llm_top_p": 0.9,
    "llm_stop": ["END"],
    "llm_seed": 7,
}


def test_streamed_answer_sends_every_llm_key_and_emits_each_token(
    openai_server: FakeOpenAI,
) -> None:
    openai_server.reply(streamed(["Hello", ", ", "world", "!"]))
    spec = line(("Answer", node("Instruction1", **EVERY_KEY)))
    events = Recorder()
    result = runner(spec, registry(openai_settings(openai_server.base_url)), on_event=events).run(
        "Hi there"
    )

    assert result.status is FlowStatus.COMPLETED
    assert result.final_output == "Hello, world!"
    assert [e.token for e in events.of(TokenGenerated)] == ["Hello", ", ", "world", "!"]
    assert {e.node_id for e in events.of(TokenGenerated)} == {nid("Answer")}
    assert openai_server.paths == ["/v1/chat/completions"]
    assert openai_server.requests == [
        {
            "model": "gpt-test",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi there"},
            ],
            "temperature": 0.2,
            "max_tokens": 64,
            "top_p": 0.9,
            "stop": ["END"],
            "seed": 7,
            "reasoning_effort": "low",
            "stream": True,
        }
    ]
    assert openai_server.headers[0]["authorization"] == "Bearer sk-test"
    answer = result.node_results[nid("Answer")].data
    assert answer == {"llm": {"provider": "openai", "model": "fake-model", "finish_reason": "stop"}}


def test_unstreamed_answer_and_settings_defaults(openai_server: FakeOpenAI) -> None:
    openai_server.reply(completion("Fine."))
    spec = line(("Answer", node("Instruction1", llm_stream=False)))
    settings = {
        **openai_settings(openai_server.base_url, model="default-model"),
        "temperature": 0.0,
        "max_output_tokens": 5,
    }
    events = Recorder()
    result = runner(spec, registry(settings), on_event=events).run("How are you?")

    assert result.final_output == "Fine."
    assert events.of(TokenGenerated) == []
    assert openai_server.requests == [
        {
            "model": "default-model",
            "messages": [{"role": "user", "content": "How are you?"}],
            "temperature": 0.0,
            "max_tokens": 5,
        }
    ]
    assert result.node_results[nid("Answer")].data["llm"]["usage"] == {
        "input_tokens": 11,
        "output_tokens": 7,
    }


def test_max_input_tokens_cuts_the_history_the_request_carries(openai_server: FakeOpenAI) -> None:
    openai_server.reply(completion("A" * 40), completion("short"))
    spec = line(
        ("First", node("Instruction1", llm_stream=False, fields={"message_type": "User"})),
        (
            "Second",
            node(
                "Instruction1",
                llm_stream=False,
                llm_system_instruction="Go on.",
                llm_max_input_tokens=12,
                fields={"thought_type": "ContinueThought1"},
            ),
        ),
    )
    result = runner(spec, registry(openai_settings(openai_server.base_url))).run("x" * 80)

    assert result.final_output == "short"
    assert openai_server.requests[0]["messages"] == [{"role": "user", "content": "x" * 80}]
    # The full history is [Go on., the 80-character input, First's 40-character answer]:
    # about 33 tokens; cut to 12, the oldest message goes and the system instruction stays.
    assert openai_server.requests[1]["messages"] == [
        {"role": "system", "content": "Go on."},
        {"role": "assistant", "content": "A" * 40},
    ]


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def test_tool_call_round_trip(openai_server: FakeOpenAI) -> None:
    openai_server.reply(
        streamed([], tool_calls=[{"id": "call_1", "name": "add", "arguments": {"a": 2, "b": 3}}]),
        streamed(["The sum", " is 5."]),
    )
    spec = line(
        (
            "Agent",
            node(
                "Agent1",
                llm_system_instruction="Use tools.",
                program_version_ids=["add"],
                max_iterations=3,
            ),
        )
    )
    events = Recorder()
    reg = registry(openai_settings(openai_server.base_url), tools=StaticTools([add]))
    result = runner(spec, reg, on_event=events).run("What is 2 + 3?")

    assert result.final_output == "The sum is 5."
    tools = [
        {
            "type": "function",
            "function": {
                "name": "add",
                "description": "Add two numbers.",
                "parameters": {
                    "additionalProperties": False,
                    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                    "required": ["a", "b"],
                    "type": "object",
                },
            },
        }
    ]
    question = [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "What is 2 + 3?"},
    ]
    assert openai_server.requests == [
        {
            "model": "gpt-4o-mini",
            "messages": question,
            "tools": tools,
            "tool_choice": "auto",
            "stream": True,
        },
        {
            "model": "gpt-4o-mini",
            "messages": [
                *question,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "5"},
            ],
            "tools": tools,
            "tool_choice": "auto",
            "stream": True,
        },
    ]
    started = events.of(ToolCallStarted)
    finished = events.of(ToolCallFinished)
    assert [(e.tool, e.call, e.arguments, e.iteration) for e in started] == [
        ("add", "call_1", {"a": 2, "b": 3}, 1)
    ]
    assert [(e.tool, e.call, e.result, e.error) for e in finished] == [("add", "call_1", "5", None)]
    assert (started[0].node_id, started[0].node_name) == (nid("Agent"), "Agent")
    # Tool events are numbered in the flow's sequence, between the node's start and finish.
    kinds = [e.type for e in events.events if e.type != "TokenGenerated"]
    assert kinds == [
        "FlowStarted",
        "NodeStarted",
        "NodeFinished",
        "NodeStarted",
        "LLMCallStarted",
        "LLMCallFinished",
        "ToolCallStarted",
        "ToolCallFinished",
        "LLMCallStarted",
        "LLMCallFinished",
        "NodeFinished",
        "NodeStarted",
        "NodeFinished",
        "FlowFinished",
    ]
    # Tokens are live only and take no number of their own: the rest count without gaps.
    seqs = [e.seq for e in events.events if e.type != "TokenGenerated"]
    assert seqs == list(range(1, len(seqs) + 1))
    data = result.node_results[nid("Agent")].data
    assert data["iterations"] == 2
    assert data["tool_calls"] == [
        {"tool": "add", "arguments": {"a": 2, "b": 3}, "result": "5", "error": None}
    ]


def test_agent_reports_tool_errors_to_the_model(openai_server: FakeOpenAI) -> None:
    openai_server.reply(
        completion(
            None,
            tool_calls=[
                {"id": "c1", "name": "add", "arguments": {"a": "two", "b": 3}},
                {"id": "c2", "name": "delete_everything", "arguments": {}},
            ],
        ),
        completion("Sorry."),
    )
    spec = line(("Agent", node("Agent1", llm_stream=False, program_version_ids=["add"])))
    events = Recorder()
    reg = registry(openai_settings(openai_server.base_url), tools=StaticTools([add]))
    result = runner(spec, reg, on_event=events).run("Add two and three")

    assert result.final_output == "Sorry."
    results = [(e.tool, e.error) for e in events.of(ToolCallFinished)]
    assert results == [
        (
            "add",
            "invalid arguments: a: Input should be a valid integer, unable to parse string "
            "as an integer",
        ),
        (
            "delete_everything",
            "tool 'delete_everything' is not available to this agent; available: add",
        ),
    ]
    tool_messages = [m for m in openai_server.requests[1]["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in tool_messages] == [f"error: {e}" for _, e in results]


def test_agent_fails_after_max_iterations(openai_server: FakeOpenAI) -> None:
    call = {"id": "c", "name": "add", "arguments": {"a": 1, "b": 1}}
    openai_server.reply(*(completion(None, tool_calls=[call]) for _ in range(2)))
    spec = line(
        ("Agent", node("Agent1", llm_stream=False, program_version_ids=["add"], max_iterations=2))
    )
    reg = registry(openai_settings(openai_server.base_url), tools=StaticTools([add]))
    result = runner(spec, reg).run("loop")

    assert result.status is FlowStatus.FAILED
    assert len(openai_server.requests) == 2
    assert result.error == (
        f"node 'Agent' ({nid('Agent')}): the agent made 2 model calls (max_iterations) without "
        "a final answer; last tool calls: add, add"
    )


def test_429_is_retried_then_succeeds(openai_server: FakeOpenAI) -> None:
    openai_server.reply(
        error(429, "slow down", {"retry-after-ms": "10"}),
        completion("finally"),
    )
    spec = line(("Answer", node("Instruction1", llm_stream=False)))
    events = Recorder()
    settings = openai_settings(openai_server.base_url, max_retries=2)
    result = runner(spec, registry(settings), on_event=events).run("hello")

    assert result.final_output == "finally"
    assert len(openai_server.requests) == 2
    assert openai_server.requests[0] == openai_server.requests[1]
    # The SDK retried within one attempt of the node: no node retry, no error event.
    assert events.of(NodeRetrying) == []
    assert events.of(FlowError) == []


def test_5xx_retries_run_out_into_a_named_failure(openai_server: FakeOpenAI) -> None:
    openai_server.reply(*(error(503, "overloaded", {"retry-after-ms": "10"}) for _ in range(3)))
    spec = line(("Answer", node("Instruction1", llm_stream=False)))
    settings = openai_settings(openai_server.base_url, max_retries=2)
    result = runner(spec, registry(settings)).run("hello")

    assert result.status is FlowStatus.FAILED
    assert len(openai_server.requests) == 3
    assert result.error == (
        f"node 'Answer' ({nid('Answer')}): openai at {openai_server.base_url}: HTTP 503: "
        "overloaded (after 2 retries)"
    )


def test_timeout_is_a_failure_that_says_so(openai_server: FakeOpenAI) -> None:
    openai_server.reply(Reply(delay=3.0, body=completion("late").body))
    spec = line(("Answer", node("Instruction1", llm_stream=False)))
    settings = openai_settings(openai_server.base_url, timeout=0.3, max_retries=0)
    result = runner(spec, registry(settings)).run("hello")

    assert result.status is FlowStatus.FAILED
    assert len(openai_server.requests) == 1
    assert result.error == (
        f"node 'Answer' ({nid('Answer')}): openai at {openai_server.base_url}: the request "
        "timed out after 0.3 s (retried 0 times)"
    )


def test_stop_aborts_the_stream(openai_server: FakeOpenAI) -> None:
    openai_server.reply(streamed([f"t{i} " for i in range(100)], chunk_delay=0.1))
    spec = line(("Answer", node("Instruction1")))
    events = Recorder()
    reg = registry(openai_settings(openai_server.base_url))
    flow_runner = runner(spec, reg)

    def on_event(event: Any) -> None:
        events(event)
        if isinstance(event, TokenGenerated):
            flow_runner.stop(event.flow_id)

    flow_runner.on_event = on_event
    result = flow_runner.run("talk")

    assert result.status is FlowStatus.STOPPED
    assert [e.token for e in events.of(TokenGenerated)] == ["t0 "]
    assert [e.node_name for e in events.of(NodeFinished)] == ["Start"]
    # The HTTP response was closed: the server sees the client leave mid-stream.
    assert openai_server.client_left.wait(5.0)


def test_stop_from_another_thread_aborts_the_stream(openai_server: FakeOpenAI) -> None:
    openai_server.reply(streamed([f"t{i} " for i in range(100)], chunk_delay=0.1))
    spec = line(("Answer", node("Instruction1")))
    first_token = threading.Event()
    events = Recorder()

    def on_event(event: Any) -> None:
        events(event)
        if isinstance(event, TokenGenerated):
            first_token.set()

    flow_runner = runner(spec, registry(openai_settings(openai_server.base_url)), on_event=on_event)
    box: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: box.update(result=flow_runner.run("talk")))
    worker.start()
    assert first_token.wait(10)
    flow_runner.stop(flow_runner.active_flows[0])
    worker.join(10)

    assert box["result"].status is FlowStatus.STOPPED
    assert 1 <= len(events.of(TokenGenerated)) < 100
    assert openai_server.client_left.wait(5.0)


PICKS = {"traverse_out": "SpawnPickedNode"}


def decision_graph(**metadata: Any) -> Any:
    return graph(
        {
            "Route": node("Decision1", fields=PICKS, **metadata),
            "Billing": node("Instruction1", llm_stream=False),
            "Technical": node("Instruction1", llm_stream=False),
        },
        [
            ("Start", "Route"),
            ("Route", "Billing", "billing"),
            ("Route", "Technical", "technical"),
            ("Billing", "End"),
            ("Technical", "End"),
        ],
    )


CHOICE_SCHEMA = {
    "type": "object",
    "properties": {"choice": {"type": "string", "enum": ["billing", "technical"]}},
    "required": ["choice"],
    "additionalProperties": False,
}


def test_decision_is_constrained_by_a_json_schema(openai_server: FakeOpenAI) -> None:
    openai_server.reply(completion(json.dumps({"choice": "billing"})), completion("Refund sent."))
    spec = decision_graph(llm_stream=False, prefix_message="Which team?")
    events = Recorder()
    result = runner(spec, registry(openai_settings(openai_server.base_url)), on_event=events).run(
        "I was charged twice"
    )

    assert result.final_output == "Refund sent."
    assert events.runs() == ["Start", "Route", "Billing", "End"]
    assert openai_server.requests[0] == {
        "model": "gpt-4o-mini",
        "messages": [
            {
                "role": "user",
                "content": "I was charged twice\n\nWhich team?\n"
                "Answer with exactly one of: billing, technical.",
            }
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "decision", "strict": True, "schema": CHOICE_SCHEMA},
        },
    }
    route = result.node_results[nid("Route")]
    assert route.output_text == "I was charged twice"
    assert route.data["picked"] == "billing"
    assert events.of(NodeStarted)[1].node_name == "Route"


def test_streamed_decision_emits_no_tokens(openai_server: FakeOpenAI) -> None:
    # A constrained answer is JSON for the engine, not text for a reader: it arrives whole.
    openai_server.reply(streamed(['{"choice": ', '"technical"}']), completion("Rebooted."))
    events = Recorder()
    result = runner(
        decision_graph(llm_stream=True),
        registry(openai_settings(openai_server.base_url)),
        on_event=events,
    ).run("My laptop is broken")

    assert result.final_output == "Rebooted."
    assert events.runs() == ["Start", "Route", "Technical", "End"]
    assert openai_server.requests[0]["stream"] is True
    assert events.of(TokenGenerated) == []
    assert result.node_results[nid("Route")].data["picked"] == "technical"


def test_decision_by_forced_tool_call(openai_server: FakeOpenAI) -> None:
    openai_server.reply(
        completion(
            None, tool_calls=[{"id": "c", "name": "choose", "arguments": {"choice": "technical"}}]
        ),
        completion("Restart it."),
    )
    spec = decision_graph(llm_stream=False)
    settings = openai_settings(openai_server.base_url, decision_mode="tool")
    events = Recorder()
    result = runner(spec, registry(settings), on_event=events).run("The app crashes")

    assert events.runs() == ["Start", "Route", "Technical", "End"]
    assert result.final_output == "Restart it."
    body = openai_server.requests[0]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "choose",
                "description": "Give your answer.",
                "parameters": CHOICE_SCHEMA,
            },
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "choose"}}
    assert "response_format" not in body


def test_structured_output_fills_flow_memory(openai_server: FakeOpenAI) -> None:
    answer = {"order_id": 4521, "reason": "double charge", "urgent": None}
    openai_server.reply(completion(json.dumps(answer)))
    params = [
        {"name": "order_id", "type": "integer", "description": "The order number"},
        {"name": "reason", "type": "string", "options": ["double charge", "late delivery"]},
        {"name": "urgent", "type": "boolean", "default": False},
    ]
    seen: dict[str, Any] = {}

    def probe(context: Any) -> str:
        seen.update(context.memory)
        return "ok"

    spec = line(
        ("Extract", node("InstructionParameters1", llm_stream=False, parameters=params)),
        ("Probe", "probe"),
    )
    reg = registry(openai_settings(openai_server.base_url))
    reg.register("probe", probe)
    result = runner(spec, reg).run("Order 4521 was charged twice")

    assert result.status is FlowStatus.COMPLETED
    values = {"order_id": 4521, "reason": "double charge", "urgent": False}
    assert seen == values
    assert result.node_results[nid("Extract")].output_text == json.dumps(values)
    body = openai_server.requests[0]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "parameters",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "integer", "description": "The order number"},
                    "reason": {"type": "string", "enum": ["double charge", "late delivery"]},
                    "urgent": {"anyOf": [{"type": "boolean"}, {"type": "null"}]},
                },
                "required": ["order_id", "reason", "urgent"],
                "additionalProperties": False,
            },
        },
    }
    assert body["messages"][-1]["content"] == (
        "Order 4521 was charged twice\n\nFill in these fields from the conversation:\n"
        "- order_id (integer, required): The order number\n"
        "- reason (one of double charge, late delivery, required)\n"
        "- urgent (boolean, optional, null when unknown)\n"
        "Answer with a JSON object with exactly these keys."
    )


def test_structured_output_that_does_not_fit_is_retried(openai_server: FakeOpenAI) -> None:
    openai_server.reply(
        completion(json.dumps({"order_id": "soon"})),
        completion(json.dumps({"order_id": 7})),
    )
    params = [{"name": "order_id", "type": "integer"}]
    spec = line(
        (
            "Extract",
            node(
                "InstructionParameters1",
                llm_stream=False,
                parameters=params,
                memory_key="order",
                fields={"error_handling": "Retry", "max_retries": 1, "retry_delay": 0},
            ),
        )
    )
    events = Recorder()
    result = runner(spec, registry(openai_settings(openai_server.base_url)), on_event=events).run(
        "order 7"
    )

    assert result.status is FlowStatus.COMPLETED
    assert [e.error for e in events.of(NodeRetrying)] == [
        "the model's answer does not fit the fields: order_id: Input should be a valid "
        "integer, unable to parse string as an integer"
    ]
    assert result.node_results[nid("Extract")].data["memory_updates"] == {"order": {"order_id": 7}}
