"""Field definitions: the ``parameters`` of forms and structured-output nodes.

The builder's ``user_form()`` and ``instruction_parameters()`` write a node's fields
as metadata ``parameters``, a list of ``{"name", "type", "required", "default",
"description", "options"}``. Node packs read them with `parse_fields` and validate
answers with the pydantic model `fields_model` builds, so every pack understands
the same definition the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

#: Field ``type`` values: the Python type each validates as, and its JSON-schema type.
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
#: The keys a field definition may have (``label`` is read as the description).
FIELD_KEYS = ("name", "type", "required", "default", "description", "label", "options")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field. It is required unless it has a default or says ``required: false``."""

    name: str
    type: str
    required: bool
    default: Any
    description: str
    options: tuple[Any, ...]

    def describe(self, optional: str | None = None) -> str:
        """A line for a person or a model: ``- name (type, required): description``.
        ``optional`` replaces the words for an optional field (default: "optional",
        with its default)."""
        kind = f"one of {', '.join(map(str, self.options))}" if self.options else self.type
        if self.required:
            need = "required"
        elif optional is not None:
            need = optional
        else:
            need = "optional"
            if self.default is not None:
                need += f", default {self.default!r}"
        text = f"- {self.name} ({kind}, {need})"
        return f"{text}: {self.description}" if self.description else text

    def json_schema(self) -> dict[str, Any]:
        """The field's JSON schema; an optional field may be null (strict structured
        output lists every property as required)."""
        schema: dict[str, Any] = {"type": FIELD_TYPES[self.type][1]}
        if self.options:
            schema["enum"] = list(self.options)
        if self.description:
            schema["description"] = self.description
        if not self.required:
            return {"anyOf": [schema, {"type": "null"}]}
        return schema


def parse_field(spec: Any, where: str, problems: list[str]) -> FieldSpec | None:
    """One definition as a `FieldSpec`; problems are appended, naming ``where``."""
    if not isinstance(spec, Mapping):
        problems.append(f"{where} must be a mapping with at least a 'name'")
        return None
    unknown = [k for k in spec if k not in FIELD_KEYS]
    if unknown:
        problems.append(f"{where} has unknown keys {unknown}; known: {', '.join(FIELD_KEYS)}")
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{where} has no 'name'")
        return None
    kind = str(spec.get("type") or "string").lower()
    if kind not in FIELD_TYPES:
        problems.append(f"{where} ({name}): type {kind!r} is not one of {', '.join(FIELD_TYPES)}")
        kind = "string"
    options = spec.get("options") or ()
    if not isinstance(options, list | tuple):
        problems.append(f"{where} ({name}): 'options' must be a list")
        options = ()
    default = spec.get("default")
    required = spec.get("required", default is None)
    if not isinstance(required, bool):
        problems.append(f"{where} ({name}): 'required' must be true or false")
        required = True
    description = spec.get("description") or spec.get("label") or ""
    return FieldSpec(name, kind, required, default, str(description), tuple(options))


def parse_fields(
    specs: Sequence[Any], problems: list[str], key: str = "parameters"
) -> list[FieldSpec]:
    """Every definition of metadata ``key``; problems (including a name defined twice)
    are appended to ``problems``."""
    fields: list[FieldSpec] = []
    for index, spec in enumerate(specs):
        field = parse_field(spec, f"metadata {key!r}[{index}]", problems)
        if field is None:
            continue
        if any(other.name == field.name for other in fields):
            problems.append(f"metadata {key!r}: field {field.name!r} is defined twice")
        fields.append(field)
    return fields


def fields_model(fields: Sequence[FieldSpec], model_name: str) -> type[BaseModel]:
    """A pydantic model validating answers to ``fields``: field names are the aliases
    (attributes are positional, since names need not be identifiers), extra keys are
    refused; ``model_dump(by_alias=True)`` gives the values by field name."""
    definitions: dict[str, Any] = {}
    for index, field in enumerate(fields):
        annotation: Any = FIELD_TYPES[field.type][0]
        if field.options:
            annotation = Literal[field.options]
        if not field.required:
            annotation = annotation | None
        default = ... if field.required else field.default
        definitions[f"f{index}"] = (annotation, Field(default, alias=field.name))
    return create_model(model_name, __config__=ConfigDict(extra="forbid"), **definitions)
