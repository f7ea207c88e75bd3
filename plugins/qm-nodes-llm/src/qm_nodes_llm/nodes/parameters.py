"""InstructionParameters1: the model fills in fields (structured output), validated by a
pydantic model built from the node's field definitions, stored in flow memory."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from qm_nodes_llm.nodes.base import Binding, LLMExecutor, NodeFailure, NodePlan, Problems
from qm_nodes_llm.prompt import ask, prompt
from qm_nodes_llm.types import JsonSchema
from quartermaster_engine import ExecutionContext, NodeResult
from quartermaster_graph import GraphNode, GraphSpec

#: Field ``type`` values: (Python type, JSON-schema type).
FIELD_TYPES: dict[str, tuple[type, str]] = {
    "string": (str, "string"),
    "str": (str, "string"),
    "text": (str, "string"),
    "integer": (int, "integer"),
    "int": (int, "integer"),
    "number": (float, "number"),
    "float": (float, "number"),
    "boolean": (bool, "boolean"),
    "bool": (bool, "boolean"),
}
FIELD_KEYS = ("name", "type", "required", "default", "description", "label", "options")


@dataclass(frozen=True)
class ParamField:
    name: str
    type: str
    required: bool
    default: Any
    description: str
    options: tuple[Any, ...]

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": FIELD_TYPES[self.type][1]}
        if self.options:
            schema["enum"] = list(self.options)
        if self.description:
            schema["description"] = self.description
        if not self.required:
            # Strict structured output needs every property listed as required; an
            # optional field is one that may be null.
            return {"anyOf": [schema, {"type": "null"}]}
        return schema

    def describe(self) -> str:
        kind = f"one of {', '.join(map(str, self.options))}" if self.options else self.type
        need = "required" if self.required else "optional, null when unknown"
        text = f"- {self.name} ({kind}, {need})"
        return f"{text}: {self.description}" if self.description else text


@dataclass(frozen=True)
class ParametersPlan:
    fields: tuple[ParamField, ...]
    model: type[BaseModel]
    schema: dict[str, Any]
    memory_key: str

    def question(self) -> str:
        lines = [
            "Fill in these fields from the conversation:",
            *(f.describe() for f in self.fields),
        ]
        lines.append("Answer with a JSON object with exactly these keys.")
        return "\n".join(lines)


def _field(spec: Any, index: int, problems: Problems) -> ParamField | None:
    where = f"metadata 'parameters'[{index}]"
    if not isinstance(spec, Mapping):
        problems.add(f"{where} must be a mapping with at least a 'name'")
        return None
    unknown = [k for k in spec if k not in FIELD_KEYS]
    if unknown:
        problems.add(f"{where} has unknown keys {unknown}; known: {', '.join(FIELD_KEYS)}")
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.add(f"{where} has no 'name'")
        return None
    kind = str(spec.get("type") or "string").lower()
    if kind not in FIELD_TYPES:
        problems.add(f"{where} ({name}): type {kind!r} is not one of {', '.join(FIELD_TYPES)}")
        kind = "string"
    options = spec.get("options") or ()
    if not isinstance(options, list | tuple):
        problems.add(f"{where} ({name}): 'options' must be a list")
        options = ()
    default = spec.get("default")
    required = spec.get("required", default is None)
    if not isinstance(required, bool):
        problems.add(f"{where} ({name}): 'required' must be true or false")
        required = True
    description = spec.get("description") or spec.get("label") or ""
    return ParamField(name, kind, required, default, str(description), tuple(options))


def fields_model(node: GraphNode, fields: tuple[ParamField, ...]) -> type[BaseModel]:
    """The pydantic model answers are validated with (field names as aliases)."""
    definitions: dict[str, Any] = {}
    for index, f in enumerate(fields):
        annotation: Any = FIELD_TYPES[f.type][0]
        if f.options:
            annotation = Literal[f.options]
        if not f.required:
            annotation = annotation | None
        default = ... if f.required else f.default
        definitions[f"f{index}"] = (annotation, Field(default, alias=f.name))
    return create_model(
        f"Parameters{node.id.hex}", __config__=ConfigDict(extra="forbid"), **definitions
    )


class InstructionParametersExecutor(LLMExecutor[ParametersPlan]):
    """InstructionParameters1: the model fills in the fields of metadata ``parameters``
    (structured output: a strict JSON schema for ``openai``, a forced tool for
    ``anthropic``, a JSON grammar for ``llamacpp``). The answer is validated by a
    pydantic model built from the fields; an invalid answer is a node failure listing
    the problems (so RETRY applies). Each value goes to flow memory under its field's
    name, or all of them as one dict under metadata ``memory_key`` when set; the
    output is the values as JSON.

    A field: ``{"name", "type": string|integer|number|boolean, "required", "default",
    "description", "options": [allowed values]}`` (the same shape as UserForm1's); a
    field is required unless it has a default or says ``required: false``. An
    optional field the model leaves null takes its default.
    """

    node_type = "InstructionParameters1"

    def plan(self, node: GraphNode, graph: GraphSpec, problems: Problems) -> ParametersPlan | None:
        specs = node.metadata.get("parameters")
        if not isinstance(specs, list) or not specs:
            problems.add("metadata 'parameters' must be a non-empty list of field definitions")
            return None
        fields: list[ParamField] = []
        for index, spec in enumerate(specs):
            f = _field(spec, index, problems)
            if f is None:
                continue
            if any(other.name == f.name for other in fields):
                problems.add(f"metadata 'parameters': field {f.name!r} is defined twice")
            fields.append(f)
        memory_key = problems.text(node.metadata, "memory_key")
        if not fields:
            return None
        schema = {
            "type": "object",
            "properties": {f.name: f.json_schema() for f in fields},
            "required": [f.name for f in fields],
            "additionalProperties": False,
        }
        return ParametersPlan(tuple(fields), fields_model(node, tuple(fields)), schema, memory_key)

    def validate_answer(self, own: ParametersPlan, text: str) -> dict[str, Any]:
        """The values of a JSON answer, or `NodeFailure` naming what is wrong."""
        try:
            data = json.loads(text)
        except ValueError:
            raise NodeFailure(f"the model's answer is not JSON: {text[:200]!r}") from None
        if not isinstance(data, dict):
            raise NodeFailure(f"the model's answer is not a JSON object: {text[:200]!r}")
        defaults = {f.name: f.default for f in own.fields if not f.required}
        cleaned = {k: (defaults[k] if v is None and k in defaults else v) for k, v in data.items()}
        try:
            values = own.model.model_validate(cleaned)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(answer)'}: {e['msg']}"
                for e in exc.errors()
            )
            raise NodeFailure(f"the model's answer does not fit the fields: {problems}") from None
        return values.model_dump(by_alias=True)

    async def run(
        self, context: ExecutionContext, plan: NodePlan[ParametersPlan], binding: Binding
    ) -> NodeResult:
        own = plan.own
        assert own is not None
        messages = ask(prompt(context), own.question())
        schema = JsonSchema("parameters", own.schema)
        request = self.request(plan, binding, messages, json_schema=schema)
        response = await self.call(context, binding, request, stream_tokens=False)
        values = self.validate_answer(own, response.text)
        memory = {own.memory_key: values} if own.memory_key else dict(values)
        return NodeResult(
            output_text=json.dumps(values, ensure_ascii=False),
            data={
                "parameters": values,
                "memory_updates": memory,
                "llm": self.llm_data(binding, response),
            },
        )
