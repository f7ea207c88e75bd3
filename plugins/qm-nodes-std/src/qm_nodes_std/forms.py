"""UserForm1: pause with a form; validate the answer with a pydantic model built from
the node's field definitions; store the values in flow memory."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from qm_nodes_std.base import Problems, StdExecutor, variables
from qm_nodes_std.templates import Template
from quartermaster_engine import ExecutionContext, NodeResult
from quartermaster_graph import GraphNode
from quartermaster_graph.fields import FieldSpec, fields_model, parse_fields


@dataclass(frozen=True, slots=True)
class FormPlan:
    fields: tuple[FieldSpec, ...]
    model: type[BaseModel]
    prompt: Template | None

    def describe(self) -> str:
        lines = ["Please fill in:", *(f.describe() for f in self.fields)]
        lines.append("Answer with a JSON object, or one key=value per line.")
        return "\n".join(lines)


class FormAnswerError(ValueError):
    """An answer that does not fill the form; ``problems`` says why, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_answer(answer: str) -> dict[str, Any]:
    """A form answer as a dict: a JSON object, or ``key=value`` lines. Empty values and
    JSON nulls count as not given."""
    text = answer.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FormAnswerError([f"invalid JSON: {exc.msg} (column {exc.colno})"]) from None
        if not isinstance(data, dict):
            raise FormAnswerError(["the JSON answer must be an object"])
        return {str(k): v for k, v in data.items() if v is not None and v != ""}
    values: dict[str, Any] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"line {number} {line.strip()!r} is not key=value")
        elif key in values:
            problems.append(f"{key}: given twice")
        elif value.strip():
            values[key] = value.strip()
    if problems:
        raise FormAnswerError(problems)
    return values


class UserFormExecutor(StdExecutor[FormPlan]):
    """UserForm1: pauses with a form of metadata ``parameters``; the answer, a JSON object
    or ``key=value`` lines, is validated against the fields and each value is stored in
    flow memory under its field's name; the output is the values as JSON. An invalid
    answer asks again, listing what is wrong.

    A field: ``{"name", "type": string|integer|number|boolean, "required",
    "default", "description", "options": [allowed values]}``; a field is required
    unless it has a default or says ``required: false``. Metadata ``prompt`` (a
    template) replaces the generated description of the fields.
    """

    node_type = "UserForm1"

    def plan(self, node: GraphNode) -> FormPlan:
        problems = Problems()
        specs = problems.items_of(node.metadata, "parameters")
        if not specs and not problems.items:
            problems.add("metadata 'parameters' is empty: list the form's fields")
        fields = parse_fields(specs, problems.items)
        source = problems.text(node.metadata, "prompt")
        prompt = problems.template(source, "metadata 'prompt'") if source else None
        problems.raise_any()
        return FormPlan(tuple(fields), fields_model(fields, f"Form{node.id.hex}"), prompt)

    def _prompt(self, context: ExecutionContext, plan: FormPlan) -> str:
        if plan.prompt is not None:
            return plan.prompt.render(variables(context, plan.prompt.names))
        return plan.describe()

    def validate_answer(self, plan: FormPlan, answer: str) -> dict[str, Any]:
        """The form's values (every field, None for optional ones not given), or
        `FormAnswerError`."""
        data = parse_answer(answer)
        try:
            model = plan.model.model_validate(data)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                where = ".".join(str(p) for p in error["loc"]) or "(form)"
                problems.append(f"{where}: {error['msg']}")
            raise FormAnswerError(problems) from None
        return model.model_dump(by_alias=True)

    async def run(self, context: ExecutionContext, plan: FormPlan) -> NodeResult:
        answer = context.user_input
        if answer is None:
            return NodeResult(wait_for_user=True, user_prompt=self._prompt(context, plan))
        try:
            values = self.validate_answer(plan, answer)
        except FormAnswerError as exc:
            listed = "\n".join(f"- {p}" for p in exc.problems)
            return NodeResult(
                wait_for_user=True,
                user_prompt=f"The answer is not valid:\n{listed}\n{self._prompt(context, plan)}",
            )
        return NodeResult(
            output_text=json.dumps(values, ensure_ascii=False),
            data={"form": values, "memory_updates": values},
        )
