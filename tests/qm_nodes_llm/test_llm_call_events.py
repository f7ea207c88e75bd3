"""LLMCallStarted / LLMCallFinished: every model call of an LLM node is announced and
closed by an event carrying the model, the prompt, the answer and the token usage."""

from __future__ import annotations

from fake_openai import FakeOpenAI, completion, error
from llm_support import Recorder, brief_answer, line, nid, node, openai_settings, registry, runner

from qm_nodes_llm import LLMCallFinished, LLMCallStarted
from quartermaster_engine import FlowStatus, event_from_dict
from quartermaster_engine.sinks import ConsoleSink


def test_a_call_is_announced_with_its_prompt_and_closed_with_model_and_usage(
    openai_server: FakeOpenAI,
) -> None:
    openai_server.reply(completion("Hi there.", model="gpt-4o-mini-2024"))
    spec = brief_answer()
    events = Recorder()
    result = runner(spec, registry(openai_settings(openai_server.base_url)), on_event=events).run(
        "hello"
    )

    assert result.final_output == "Hi there."
    [started] = events.of(LLMCallStarted)
    [finished] = events.of(LLMCallFinished)
    assert (started.node_id, started.node_name, started.provider, started.model) == (
        nid("Answer"),
        "Answer",
        "openai",
        "gpt-4o-mini",
    )
    assert started.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
    ]
    assert (started.temperature, started.max_output_tokens, started.stream, started.tools) == (
        0.2,
        64,
        False,
        [],
    )
    assert finished.call == started.call
    assert (finished.model, finished.text, finished.finish_reason, finished.error) == (
        "gpt-4o-mini-2024",
        "Hi there.",
        "stop",
        None,
    )
    assert finished.usage == {"input_tokens": 11, "output_tokens": 7}
    assert finished.duration_seconds > 0
    # Between the node's start and finish, numbered in the flow's sequence.
    kinds = events.types()
    assert kinds[kinds.index("LLMCallStarted") - 1] == "NodeStarted"
    assert kinds[kinds.index("LLMCallFinished") + 1] == "NodeFinished"
    # The JSON form reads back.
    assert event_from_dict(finished.to_dict()) == finished
    # The console shows the call once, when it answered.
    console = ConsoleSink()
    assert console.format(started) is None
    assert console.format(finished) == "  · Answer: gpt-4o-mini-2024, 11 → 7 tokens"


def test_a_failed_call_is_closed_with_the_providers_error(openai_server: FakeOpenAI) -> None:
    openai_server.reply(error(400, "bad request"))
    spec = line(("Answer", node("Instruction1", llm_stream=False)))
    events = Recorder()
    settings = openai_settings(openai_server.base_url, max_retries=0)
    result = runner(spec, registry(settings), on_event=events).run("hello")

    assert result.status is FlowStatus.FAILED
    [started] = events.of(LLMCallStarted)
    [finished] = events.of(LLMCallFinished)
    assert finished.call == started.call
    assert finished.error == f"openai at {openai_server.base_url}: HTTP 400: bad request"
    assert (finished.text, finished.usage, finished.tool_calls) == ("", {}, [])
    assert ConsoleSink().format(finished) == (
        f"  · Answer: openai call failed: openai at {openai_server.base_url}: HTTP 400: bad request"
    )
