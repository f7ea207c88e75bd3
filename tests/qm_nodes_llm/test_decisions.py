"""Decision1's answer is exactly one of its edge labels; anything else is a node failure,
retried under the node's RETRY strategy and then named with the answer and the labels."""

from __future__ import annotations

import json

import pytest
from fake_openai import FakeOpenAI, completion
from llm_support import Recorder, graph, nid, node, openai_settings, registry, runner

from quartermaster_engine import FlowError, FlowStatus, NodeRetrying, NodeStarted
from quartermaster_engine.runner import NodeConfigError

PICKS = {"traverse_out": "SpawnPickedNode"}


def language_graph(**fields: object) -> object:
    return graph(
        {
            "Language": node(
                "Decision1", fields={**PICKS, **fields}, llm_stream=False, options=["en", "fr"]
            ),
            "English": node("Instruction1", llm_stream=False),
            "French": node("Instruction1", llm_stream=False),
        },
        [
            ("Start", "Language"),
            ("Language", "English", "en"),
            ("Language", "French", "fr"),
            ("English", "End"),
            ("French", "End"),
        ],
    )


def test_answer_outside_the_labels_is_retried_then_fails_naming_it(
    openai_server: FakeOpenAI,
) -> None:
    # 0.1.5 matched "en" inside "French" by substring; here "French" is simply not a label.
    openai_server.reply(*(completion(json.dumps({"choice": "French"})) for _ in range(3)))
    spec = language_graph(error_handling="Retry", max_retries=2, retry_delay=0)
    events = Recorder()
    result = runner(spec, registry(openai_settings(openai_server.base_url)), on_event=events).run(
        "Bonjour"
    )

    assert result.status is FlowStatus.FAILED
    assert len(openai_server.requests) == 3
    message = (
        "the model answered 'French', which is not one of the labels 'en', 'fr' "
        f"(openai at {openai_server.base_url}, model fake-model)"
    )
    assert [(e.attempt, e.next_attempt, e.error) for e in events.of(NodeRetrying)] == [
        (1, 2, message),
        (2, 3, message),
    ]
    assert [(e.node_name, e.error) for e in events.of(FlowError)] == [("Language", message)]
    assert [(e.node_name, e.attempt) for e in events.of(NodeStarted)] == [
        ("Start", 1),
        ("Language", 1),
        ("Language", 2),
        ("Language", 3),
    ]
    assert result.error == f"node 'Language' ({nid('Language')}): {message}"


def test_a_retry_that_lands_on_a_label_takes_that_branch(openai_server: FakeOpenAI) -> None:
    openai_server.reply(
        completion(json.dumps({"choice": "EN"})),
        completion(json.dumps({"choice": "en"})),
        completion("Hello!"),
    )
    spec = language_graph(error_handling="Retry", max_retries=3, retry_delay=0)
    events = Recorder()
    result = runner(spec, registry(openai_settings(openai_server.base_url)), on_event=events).run(
        "Hi"
    )

    assert result.status is FlowStatus.COMPLETED
    assert result.final_output == "Hello!"
    assert events.runs() == ["Start", "Language", "Language", "English", "End"]
    assert len(events.of(NodeRetrying)) == 1


def test_without_retry_the_first_bad_answer_stops_the_flow(openai_server: FakeOpenAI) -> None:
    openai_server.reply(completion("Sure! I think en."))
    events = Recorder()
    result = runner(
        language_graph(), registry(openai_settings(openai_server.base_url)), on_event=events
    ).run("Hi")

    assert result.status is FlowStatus.FAILED
    assert len(openai_server.requests) == 1
    assert events.runs() == ["Start", "Language"]
    assert "the model answered 'Sure! I think en.'" in (result.error or "")


def test_bad_decision_settings_are_reported_before_the_flow_starts(
    openai_server: FakeOpenAI,
) -> None:
    spec = graph(
        {
            "Route": node("Decision1", options=["yes", "maybe"], llm_temprature=0.1),
            "Yes": node("Instruction1"),
            "No": node("Instruction1", llm_provider="nosuch", llm_thinking_level="extreme"),
        },
        [("Start", "Route"), ("Route", "Yes", "yes"), ("Route", "No", "no")],
    )
    with pytest.raises(NodeConfigError) as caught:
        runner(spec, registry(openai_settings(openai_server.base_url))).run("?")

    from qm_nodes_llm import LLM_KEYS

    known = ", ".join(LLM_KEYS)
    assert str(caught.value).splitlines()[1:] == [
        f"  node 'Route' ({nid('Route')}): metadata 'llm_temprature' is not an LLM setting; "
        f"known: {known}",
        f"  node 'Route' ({nid('Route')}): a decision must pick one branch: traverse_out must "
        "be SpawnPickedNode, not SpawnAll",
        f"  node 'Route' ({nid('Route')}): metadata 'options' ['yes', 'maybe'] does not match "
        "the outgoing edge labels ['yes', 'no']",
        f"  node 'No' ({nid('No')}): metadata 'llm_thinking_level': Value error, must be one of "
        "off, minimal, low, medium, high",
    ]
    assert openai_server.requests == []


def test_unknown_provider_is_reported_before_the_flow_starts() -> None:
    spec = graph({"Ask": node("Instruction1", llm_provider="nosuch")}, [("Start", "Ask")])
    with pytest.raises(NodeConfigError) as caught:
        runner(spec, registry()).run("?")
    assert str(caught.value).splitlines()[1] == (
        f"  node 'Ask' ({nid('Ask')}): unknown LLM provider 'nosuch'; installed: anthropic, "
        "llamacpp, ollama, openai"
    )


def test_bad_agent_and_parameters_settings_are_reported_before_the_flow_starts() -> None:
    from qm_nodes_llm import StaticTools

    def lookup(term: str) -> str:
        """Look a term up."""
        return term

    spec = graph(
        {
            "Agent": node("Agent1", program_version_ids=["lookup", "nosuch"], max_iterations=0),
            "Form": node(
                "InstructionParameters1",
                parameters=[{"name": "a", "type": "date"}, {"type": "string"}, {"name": "a"}],
            ),
        },
        [("Start", "Agent"), ("Agent", "Form")],
    )
    reg = registry({"provider": "openai"}, tools=StaticTools([lookup]))
    with pytest.raises(NodeConfigError) as caught:
        runner(spec, reg).run("?")
    agent, form = f"  node 'Agent' ({nid('Agent')}): ", f"  node 'Form' ({nid('Form')}): "
    assert str(caught.value).splitlines()[1:] == [
        agent + "unknown tool 'nosuch'; installed: lookup",
        agent + "metadata 'max_iterations' must be an integer >= 1, got 0",
        form + "metadata 'parameters'[0] (a): type 'date' is not one of string, str, text, "
        "integer, int, number, float, boolean, bool",
        form + "metadata 'parameters'[1] has no 'name'",
        form + "metadata 'parameters': field 'a' is defined twice",
    ]
