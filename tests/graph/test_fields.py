"""Field definitions shared by forms and structured-output nodes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from quartermaster_graph.fields import FieldSpec, fields_model, parse_fields

SPECS = [
    {"name": "email", "description": "where we reply"},
    {"name": "age", "type": "integer", "required": False},
    {"name": "plan", "options": ["free", "pro"], "default": "free"},
    {"name": "urgent", "type": "bool", "label": "is it urgent?"},
]


def test_definitions_parse_with_types_requiredness_and_descriptions() -> None:
    problems: list[str] = []
    fields = parse_fields(SPECS, problems)
    assert problems == []
    assert fields == [
        FieldSpec("email", "string", True, None, "where we reply", ()),
        FieldSpec("age", "integer", False, None, "", ()),
        FieldSpec("plan", "string", False, "free", "", ("free", "pro")),
        FieldSpec("urgent", "bool", True, None, "is it urgent?", ()),
    ]
    assert [f.describe() for f in fields] == [
        "- email (string, required): where we reply",
        "- age (integer, optional)",
        "- plan (one of free, pro, optional, default 'free')",
        "- urgent (bool, required): is it urgent?",
    ]
    assert fields[1].describe(optional="optional, null when unknown") == (
        "- age (integer, optional, null when unknown)"
    )


def test_every_problem_is_reported() -> None:
    problems: list[str] = []
    fields = parse_fields(
        [{"name": "a", "type": "date", "colour": 1}, "b", {"type": "int"}, {"name": "a"}],
        problems,
        key="fields",
    )
    assert [f.name for f in fields] == ["a", "a"]
    assert problems == [
        "metadata 'fields'[0] has unknown keys ['colour']; known: name, type, required, "
        "default, description, label, options",
        "metadata 'fields'[0] (a): type 'date' is not one of string, str, text, integer, int, "
        "number, float, boolean, bool",
        "metadata 'fields'[1] must be a mapping with at least a 'name'",
        "metadata 'fields'[2] has no 'name'",
        "metadata 'fields': field 'a' is defined twice",
    ]


def test_the_model_validates_answers_by_field_name() -> None:
    problems: list[str] = []
    model = fields_model(parse_fields(SPECS, problems), "Signup")
    answer = model.model_validate({"email": "a@b.c", "age": "41", "urgent": "yes"})
    assert answer.model_dump(by_alias=True) == {
        "email": "a@b.c",
        "age": 41,
        "plan": "free",
        "urgent": True,
    }
    with pytest.raises(ValidationError) as caught:
        model.model_validate({"email": "x", "plan": "gold", "extra": 1})
    assert sorted(".".join(map(str, e["loc"])) for e in caught.value.errors()) == [
        "extra",
        "plan",
        "urgent",
    ]


def test_json_schema_of_required_and_optional_fields() -> None:
    problems: list[str] = []
    email, age, plan, _ = parse_fields(SPECS, problems)
    assert email.json_schema() == {"type": "string", "description": "where we reply"}
    assert age.json_schema() == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert plan.json_schema() == {
        "anyOf": [{"type": "string", "enum": ["free", "pro"]}, {"type": "null"}]
    }
