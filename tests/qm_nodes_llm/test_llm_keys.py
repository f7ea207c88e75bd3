"""Every ``llm_*`` key the builder writes reaches the provider request; each provider maps
the request to its own API's body."""

from __future__ import annotations

from typing import Any

from llm_support import Recorder, ScriptedProvider, line, node, registry, runner

from qm_nodes_llm import (
    LLM_KEYS,
    AnthropicSettings,
    ChatMessage,
    JsonSchema,
    LLMNodeSettings,
    LLMRequest,
    OpenAISettings,
    StaticProviders,
    ToolCall,
    ToolSpec,
)
from qm_nodes_llm.providers.anthropic_provider import AnthropicProvider
from qm_nodes_llm.providers.openai_provider import OpenAIProvider
from quartermaster_engine import TokenGenerated
from quartermaster_graph import GraphBuilder


def scripted(*answers: str) -> tuple[ScriptedProvider, Any]:
    provider = ScriptedProvider(list(answers))
    settings = LLMNodeSettings(provider="scripted")
    return provider, registry(settings, providers=StaticProviders({"scripted": provider}))


def test_builder_keys_reach_the_request() -> None:
    spec = (
        GraphBuilder("keys")
        .start()
        .instruction(
            "Ask",
            model="m-1",
            provider="scripted",
            temperature=0.3,
            system_instruction="Sys.",
            stream=True,
            max_output_tokens=99,
            max_input_tokens=500,
            vision=True,
            thinking_level="high",
        )
        .end()
        .build()
    )
    # The builder writes exactly these keys; the pack reads each of them.
    assert {k for k in spec.nodes[1].metadata if k.startswith("llm_")} <= set(LLM_KEYS)
    provider, reg = scripted("one two")
    events = Recorder()
    result = runner(spec, reg, on_event=events).run("question")

    assert result.final_output == "one two"
    [request] = provider.requests
    assert request == LLMRequest(
        messages=[ChatMessage("system", "Sys."), ChatMessage("user", "question")],
        model="m-1",
        temperature=0.3,
        max_output_tokens=99,
        max_input_tokens=500,
        stream=True,
        thinking_level="high",
        vision=True,
    )
    assert [e.token for e in events.of(TokenGenerated)] == ["one", "two"]


def test_stream_off_emits_no_tokens_and_node_settings_win_over_defaults() -> None:
    spec = line(
        ("Ask", node("Instruction1", llm_stream=False, llm_top_p=0.5, llm_stop="STOP", llm_seed=3))
    )
    provider = ScriptedProvider(["a b c"])
    settings = LLMNodeSettings(provider="scripted", model="dflt", temperature=1.5)
    events = Recorder()
    reg = registry(settings, providers=StaticProviders({"scripted": provider}))
    runner(spec, reg, on_event=events).run("q")

    assert events.of(TokenGenerated) == []
    [request] = provider.requests
    assert (request.model, request.temperature, request.stream) == ("dflt", 1.5, False)
    assert (request.top_p, request.stop, request.seed) == (0.5, ["STOP"], 3)


def test_forced_provider_and_model_override_the_node() -> None:
    spec = line(("Ask", node("Instruction1", llm_provider="openai", llm_model="gpt-4o")))
    provider = ScriptedProvider(["ok"])
    settings = LLMNodeSettings(
        provider="scripted", force_provider=True, model="tiny", force_model=True
    )
    reg = registry(settings, providers=StaticProviders({"scripted": provider}))
    result = runner(spec, reg).run("q")

    assert result.final_output == "ok"
    assert provider.requests[0].model == "tiny"


def test_prompt_rules_for_history_and_input_text() -> None:
    spec = line(
        ("First", node("Instruction1", llm_system_instruction="First rules.")),
        (
            "Second",
            node(
                "Instruction1",
                llm_system_instruction="Second rules.",
                fields={"thought_type": "ContinueThought1"},
            ),
        ),
        ("Third", node("Instruction1", llm_system_instruction="Third rules.")),
    )
    provider, reg = scripted("answer one", "answer two", "answer three")
    runner(spec, reg).run("the input")

    first, second, third = (r.messages for r in provider.requests)
    # NewThought1 + no user message: the input text is the user message.
    assert first == [ChatMessage("system", "First rules."), ChatMessage("user", "the input")]
    # ContinueThought1: the history, with only the node's own instruction.
    assert second == [
        ChatMessage("system", "Second rules."),
        ChatMessage("assistant", "answer one"),
    ]
    assert third == [ChatMessage("system", "Third rules."), ChatMessage("user", "answer two")]


def test_summarize_and_merge_prompts() -> None:
    spec = (
        GraphBuilder("m")
        .start()
        .instruction("Opener", provider="scripted", message_type="User")
        .parallel()
        .branch()
        .instruction("Pros", provider="scripted")
        .end()
        .branch()
        .instruction("Cons", provider="scripted")
        .end()
        .merge("Merge", provider="scripted", suffix_message="Keep it short.")
        .summarize("Sum", provider="scripted", thought_type="ContinueThought1")
        .end()
        .build()
    )
    provider, reg = scripted("opening", "pro", "con", "merged", "summary")
    result = runner(spec, reg).run("Should we ship?")

    assert result.final_output == "summary"
    by_first_user = {r.messages[-1].content: r for r in provider.requests}
    assert (
        "Compress following conversations into one\n\n[Pros]\npro\n\n[Cons]\ncon\n\n"
        "Keep it short." in by_first_user
    )
    summary = provider.requests[-1].messages
    assert summary == [
        ChatMessage("system", "Summarize the given conversation concisely."),
        ChatMessage("user", "assistant: merged"),
    ]


def openai_provider(**settings: Any) -> OpenAIProvider:
    return OpenAIProvider(OpenAISettings(base_url="http://127.0.0.1:9/v1", api_key="k", **settings))


def test_openai_body_images_only_with_vision() -> None:
    message = ChatMessage("user", "What is this?", images=["data:image/png;base64,AAAA"])
    provider = openai_provider()
    off = provider.request_body(LLMRequest(messages=[message], stream=False))
    on = provider.request_body(LLMRequest(messages=[message], stream=False, vision=True))

    assert off["messages"] == [{"role": "user", "content": "What is this?"}]
    assert on["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        }
    ]


def test_openai_official_endpoint_uses_max_completion_tokens() -> None:
    official = OpenAIProvider(OpenAISettings(api_key="k"))
    body = official.request_body(LLMRequest(messages=[], max_output_tokens=10, stream=False))
    assert body == {"model": "gpt-4o-mini", "messages": [], "max_completion_tokens": 10}


def test_anthropic_body() -> None:
    provider = AnthropicProvider(AnthropicSettings(api_key="k", model="claude-test"))
    request = LLMRequest(
        messages=[
            ChatMessage("system", "Be nice."),
            ChatMessage("user", "Weather?"),
            ChatMessage("assistant", "", tool_calls=[ToolCall("t1", "weather", {"city": "Oslo"})]),
            ChatMessage("tool", "rain", tool_call_id="t1"),
        ],
        temperature=0.4,
        max_output_tokens=100,
        tools=[ToolSpec("weather", "The weather.", {"type": "object"})],
        stop=["\n\n"],
    )
    assert provider.request_body(request) == {
        "model": "claude-test",
        "system": "Be nice.",
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Oslo"}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "rain"}],
            },
        ],
        "tools": [
            {"name": "weather", "description": "The weather.", "input_schema": {"type": "object"}}
        ],
        "tool_choice": {"type": "auto"},
        "temperature": 0.4,
        "stop_sequences": ["\n\n"],
    }


def test_anthropic_thinking_and_constrained_answers() -> None:
    provider = AnthropicProvider(AnthropicSettings(api_key="k"))
    thinking = provider.request_body(
        LLMRequest(messages=[ChatMessage("user", "Hm")], temperature=0.5, thinking_level="low")
    )
    assert thinking["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert thinking["max_tokens"] == 4096 + 2048
    assert "temperature" not in thinking
    decision = provider.request_body(
        LLMRequest(messages=[ChatMessage("user", "Hm")], choices=["a", "b"], thinking_level="low")
    )
    assert decision["tool_choice"] == {"type": "tool", "name": "choose"}
    assert decision["tools"][0]["input_schema"]["properties"]["choice"]["enum"] == ["a", "b"]
    assert "thinking" not in decision
    form = provider.request_body(
        LLMRequest(
            messages=[ChatMessage("user", "Hm")], json_schema=JsonSchema("p", {"type": "object"})
        )
    )
    assert form["tool_choice"] == {"type": "tool", "name": "respond"}


def test_providers_are_shared_per_settings_secrets_included() -> None:
    from qm_nodes_llm import PluginProviders

    source = PluginProviders()
    base = {"base_url": "http://127.0.0.1:9/v1"}
    one = source.get("openai", {**base, "api_key": "k1"})
    assert source.get("openai", {**base, "api_key": "k1"}) is one
    other = source.get("openai", {**base, "api_key": "k2"})
    assert other is not one
    assert other.request_body(LLMRequest(messages=[], stream=False))["model"] == "gpt-4o-mini"
