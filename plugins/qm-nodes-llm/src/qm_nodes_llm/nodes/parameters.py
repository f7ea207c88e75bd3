"""InstructionParameters1: the model fills in fields (structured output), validated by a
pydantic model built from the node's field definitions, stored in flow memory."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from qm_nodes_llm.nodes.base import Binding, LLMExecutor, NodeFailure, NodePlan, Problems
from qm_nodes_llm.prompt import ask, prompt
from qm_nodes_llm.types import JsonSchema
from quartermaster_engine import ExecutionContext, NodeResult
from quartermaster_graph import GraphNode, GraphSpec
from quartermaster_graph.fields import FieldSpec, fields_model, parse_fields


@dataclass(frozen=True)
class ParametersPlan:
    fields: tuple[FieldSpec, ...]
    model: type[BaseModel]
    schema: dict[str, Any]
    memory_key: str

    def question(self) -> str:
        lines = [
            "Fill in these fields from the conversation:",
            *(f.describe(optional="optional, null when unknown") for f in self.fields),
        ]
        lines.append("Answer with a JSON object with exactly these keys.")
        return "\n".join(lines)


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
        found: list[str] = []
        fields = parse_fields(specs, found)
        for problem in found:
            problems.add(problem)
        memory_key = problems.text(node.metadata, "memory_key")
        if not fields:
            return None
        schema = {
            "type": "object",
            "properties": {f.name: f.json_schema() for f in fields},
            "required": [f.name for f in fields],
            "additionalProperties": False,
        }
        model = fields_model(fields, f"Parameters{node.id.hex}")
        return ParametersPlan(tuple(fields), model, schema, memory_key)

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
        response = await self.call(context, binding, request)
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
