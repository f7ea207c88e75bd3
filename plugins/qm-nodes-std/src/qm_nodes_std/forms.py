"""UserForm1: pause with a form; validate the answer with a pydantic model built from
the node's field definitions; store the values in flow memory."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from qm_nodes_std.base import Problems, StdExecutor, variables
from qm_nodes_std.templates import Template
from quartermaster_engine import ExecutionContext, NodeResult
from quartermaster_graph import GraphNode

#: Field ``type`` values and the Python type each validates as.
FIELD_TYPES: dict[str, type] = {
    "string": str,
    "str": str,
    "text": str,
    "integer": int,
    "int": int,
    "number": float,
    "float": float,
    "boolean": bool,
    "bool": bool,
}
_FIELD_KEYS = ("name", "type", "required", "default", "description", "label", "options")


@dataclass(frozen=True, slots=True)
class FormField:
    name: str
    type: str
    required: bool
    default: Any
    description: str
    options: tuple[Any, ...]

    def describe(self) -> str:
        kind = f"one of {', '.join(map(str, self.options))}" if self.options else self.type
        need = "required" if self.required else "optional"
        if not self.required and self.default is not None:
            need += f", default {self.default!r}"
        text = f"- {self.name} ({kind}, {need})"
        return f"{text}: {self.description}" if self.description else text


@dataclass(frozen=True, slots=True)
class FormPlan:
    fields: tuple[FormField, ...]
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


def _field(spec: Any, index: int, problems: Problems) -> FormField | None:
    where = f"metadata 'parameters'[{index}]"
    if not isinstance(spec, Mapping):
        problems.add(f"{where} must be a mapping with at least a 'name'")
        return None
    unknown = [k for k in spec if k not in _FIELD_KEYS]
    if unknown:
        problems.add(f"{where} has unknown keys {unknown}; known: {', '.join(_FIELD_KEYS)}")
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.add(f"{where} has no 'name'")
        return None
    kind = str(spec.get("type") or "string").lower()
    if kind not in FIELD_TYPES:
        problems.add(f"{where} ({name}): type {kind!r} is not one of {', '.join(FIELD_TYPES)}")
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
    return FormField(name, kind, required, default, str(description), tuple(options))


def _model(node: GraphNode, fields: tuple[FormField, ...]) -> type[BaseModel]:
    definitions: dict[str, Any] = {}
    for index, field in enumerate(fields):
        annotation: Any = FIELD_TYPES.get(field.type, str)
        if field.options:
            annotation = Literal[field.options]
        if not field.required:
            annotation = annotation | None
        default = ... if field.required else field.default
        # Attribute names are positional; the alias is the field's name as people write it.
        definitions[f"f{index}"] = (annotation, Field(default, alias=field.name))
    return create_model(
        f"Form{node.id.hex}",
        __config__=ConfigDict(extra="forbid", populate_by_name=False),
        **definitions,
    )


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
        fields: list[FormField] = []
        specs = problems.items_of(node.metadata, "parameters")
        if not specs and not problems.items:
            problems.add("metadata 'parameters' is empty: list the form's fields")
        for index, spec in enumerate(specs):
            field = _field(spec, index, problems)
            if field is not None:
                if any(f.name == field.name for f in fields):
                    problems.add(f"metadata 'parameters': field {field.name!r} is defined twice")
                fields.append(field)
        source = problems.text(node.metadata, "prompt")
        prompt = problems.template(source, "metadata 'prompt'") if source else None
        problems.raise_any()
        return FormPlan(tuple(fields), _model(node, tuple(fields)), prompt)

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
