"""InstructionForm1 / instruction_form(schema=...): structured output validated by a
pydantic model or a JSON schema, the parsed answer in data["parsed"]; an answer that
does not fit fails the node naming the problems, so its error strategy applies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from form_models import Order
from llm_support import Recorder, ScriptedProvider, registry, runner

from qm_nodes_llm import LLMNodeSettings, StaticProviders
from quartermaster_engine import FlowStatus, NodeConfigError, NodeRetrying
from quartermaster_graph import GraphBuilder, GraphSpec

SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}


def run(spec: GraphSpec, *answers: str, **kwargs: Any) -> tuple[ScriptedProvider, Any]:
    provider = ScriptedProvider(list(answers))
    reg = registry(
        LLMNodeSettings(provider="scripted"), providers=StaticProviders({"scripted": provider})
    )
    return provider, runner(spec, reg, **kwargs).run("Order 4521 was charged twice")


def form(schema: Any, **kwargs: Any) -> GraphSpec:
    return (
        GraphBuilder("g")
        .start()
        .instruction_form("Extract", schema=schema, capture_as="x", **kwargs)
        .end()
        .build()
    )


def test_builder_stores_the_models_schema_and_its_import_path():
    node = form(Order).nodes[1]
    assert node.type_name == "InstructionForm1"
    assert node.metadata["schema"] == Order.model_json_schema()
    assert node.metadata["schema_model"] == "form_models:Order"
    assert node.metadata["llm_stream"] is False


def test_a_pydantic_model_validates_the_answer_into_data_parsed():
    answer = json.dumps({"order_id": "4521", "reason": "double charge"})
    provider, result = run(form(Order), answer)
    assert result.status is FlowStatus.COMPLETED, result.error
    parsed = {"order_id": 4521, "reason": "double charge", "urgent": False}
    assert result["x"].data["parsed"] == parsed
    assert result["x"].output_text == json.dumps(parsed)
    request = provider.requests[0]
    assert request.json_schema is not None
    assert (request.json_schema.name, request.json_schema.schema) == (
        "form",
        Order.model_json_schema(),
    )
    assert request.messages[-1].content.endswith(
        "Answer with a JSON object that fits this JSON schema, and nothing else:\n"
        + json.dumps(Order.model_json_schema())
    )


def test_a_json_schema_validates_the_answer_and_memory_key_stores_it():
    _, result = run(form(SCHEMA, memory_key="trip"), json.dumps({"city": "Oslo", "days": 3}))
    assert result.status is FlowStatus.COMPLETED, result.error
    assert result["x"].data["parsed"] == {"city": "Oslo", "days": 3}
    assert result["x"].data["memory_updates"] == {"trip": {"city": "Oslo", "days": 3}}


def test_an_answer_that_does_not_fit_fails_naming_every_problem():
    bad = json.dumps({"city": 7, "tags": ["a", 2], "extra": True})
    _, result = run(form(SCHEMA), bad)
    assert result.status is FlowStatus.FAILED
    assert result.error is not None
    assert result.error.endswith(
        "the model's answer does not fit the schema: days: required but missing; "
        "city: expected string, got int; tags[1]: expected string, got int; "
        "extra: not allowed (no such property)"
    )


def test_a_model_answer_that_does_not_validate_is_retried_under_retry():
    events = Recorder()
    spec = form(Order, error_handling="Retry", max_retries=1, retry_delay=0)
    good = json.dumps({"order_id": 1, "reason": "late"})
    _, result = run(spec, json.dumps({"order_id": "soon"}), good, on_event=events)
    assert result.status is FlowStatus.COMPLETED, result.error
    assert [e.error for e in events.of(NodeRetrying)] == [
        "the model's answer does not fit the schema: order_id: Input should be a valid "
        "integer, unable to parse string as an integer; reason: Field required"
    ]
    assert result["x"].data["parsed"] == {"order_id": 1, "reason": "late", "urgent": False}


def test_not_json_fails_the_node():
    _, result = run(form(SCHEMA), "sure! here it is")
    assert result.error is not None
    assert result.error.endswith("the model's answer is not JSON: 'sure! here it is'")


def test_bad_settings_are_refused_before_the_flow_starts():
    spec = form(SCHEMA)
    spec.nodes[1].metadata["schema_model"] = "form_models:Nope"
    with pytest.raises(
        NodeConfigError, match=r"metadata 'schema_model': cannot import 'form_models:Nope'"
    ):
        run(spec)
    spec.nodes[1].metadata["schema"] = {"type": "array"}
    with pytest.raises(
        NodeConfigError, match="metadata 'schema' must be a JSON schema of an object"
    ):
        run(spec)


def test_instruction_form_refuses_a_schema_that_is_neither():
    with pytest.raises(
        ValueError,
        match=r"^instruction_form\('F'\): schema must be a pydantic model or a JSON schema "
        r"dict, got str$",
    ):
        GraphBuilder("g").start().instruction_form("F", schema="nope")  # type: ignore[arg-type]
