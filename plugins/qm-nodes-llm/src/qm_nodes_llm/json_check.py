"""A small JSON-schema checker for structured answers: the keywords a form schema
uses (``type``, ``properties``, ``required``, ``additionalProperties``, ``enum``,
``const``, ``items``, ``anyOf``, local ``$ref``). Each problem names its path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def schema_problems(
    value: Any, schema: Mapping[str, Any], root: Mapping[str, Any] | None = None
) -> list[str]:
    """Every way ``value`` breaks ``schema`` (a part of ``root``, for ``$ref``s; by
    default the whole schema), as ``path: problem`` (path ``(answer)`` for the whole
    value); empty when it fits."""
    problems: list[str] = []
    _check(value, schema, "(answer)", schema if root is None else root, problems)
    return problems


def _is(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(kind, object))


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    target: Any = root
    for part in ref[2:].split("/"):
        target = target.get(part, {}) if isinstance(target, Mapping) else {}
    return target if isinstance(target, Mapping) else {}


def _check(
    value: Any, schema: Mapping[str, Any], path: str, root: Mapping[str, Any], out: list[str]
) -> None:
    schema = _resolve(schema, root)
    if "anyOf" in schema:
        if not any(not schema_problems(value, s, root) for s in schema["anyOf"]):
            out.append(f"{path}: matches none of the allowed forms")
        return
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if isinstance(kind, str) else []
    if kinds and not any(_is(value, k) for k in kinds):
        out.append(f"{path}: expected {' or '.join(kinds)}, got {type(value).__name__}")
        return
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{path}: {value!r} is not one of {schema['enum']!r}")
    if "const" in schema and value != schema["const"]:
        out.append(f"{path}: expected {schema['const']!r}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                out.append(f"{_join(path, name)}: required but missing")
        for name, item in value.items():
            where = _join(path, name)
            if name in props:
                _check(item, props[name], where, root, out)
            elif schema.get("additionalProperties") is False:
                out.append(f"{where}: not allowed (no such property)")
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            _check(item, schema["items"], f"{path}[{index}]", root, out)


def _join(path: str, name: str) -> str:
    return name if path == "(answer)" else f"{path}.{name}"
