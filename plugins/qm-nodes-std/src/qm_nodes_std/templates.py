"""Jinja2 templates rendered in a sandbox, over the same names as expressions.

The environment is Jinja2's `ImmutableSandboxedEnvironment` (a `SandboxedEnvironment`
that also refuses to modify lists and dicts, since the memory snapshot a template
sees is shared) with `StrictUndefined`: a name or key that does not exist is an
error naming it, never silently empty text. Use ``{{ memory.x | default("") }}``
or ``{% if memory.x is defined %}`` for optional values.

Templates are compiled once per source text (`compile_template`); unknown
top-level names and syntax errors are found before a flow starts.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2
import simpleeval  # type: ignore[import-untyped]
from jinja2 import meta
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter

from qm_nodes_std.expressions import BASE_NAMES
from qm_nodes_std.filters import bounded_filters, bounded_lipsum
from qm_nodes_std.limits import (
    GROWING,
    bounded_method,
    bounded_output,
    bounded_range,
    check_format_spec,
    safe_mod,
)


class _BoundedFormatter(SandboxedFormatter):
    """Jinja's sandboxed ``str.format``, refusing widths over the limit (see `limits`)."""

    def format_field(self, value: Any, format_spec: str) -> Any:
        check_format_spec(format_spec)
        return super().format_field(value, format_spec)


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with the limits of expressions (`qm_nodes_std.limits`):
    ``*``, ``**`` and ``+`` as simpleeval bounds them, ``%`` formatting, padding
    methods, ``str.join``, ``str.replace`` and ``str.format`` refusing results over
    the limit, ``range`` of at most as many items as a comprehension (the filters
    are bounded in `qm_nodes_std.filters`)."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            return simpleeval.safe_mult(left, right)
        if operator == "**":
            return simpleeval.safe_power(left, right)
        if operator == "+":
            return simpleeval.safe_add(left, right)
        if operator == "%":
            return safe_mod(left, right)
        return super().call_binop(context, operator, left, right)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and attr in GROWING:
            return False  # only the bounded versions `getattr` hands out
        return super().is_safe_attribute(obj, attr, value)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is str and attribute in GROWING:
            return bounded_method(obj, attribute)
        return super().getattr(obj, attribute)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if (
            not isinstance(value, types.MethodType | types.BuiltinMethodType)
            or value.__name__ not in ("format", "format_map")
            or type(value.__self__) is not str
        ):
            return super().wrap_str_format(value)
        text: str = value.__self__
        vformat = _BoundedFormatter(self).vformat
        if value.__name__ == "format_map":

            def format_map(mapping: Mapping[str, Any]) -> str:
                return vformat(text, (), mapping)

            return format_map

        def format_(*args: Any, **kwargs: Any) -> str:
            return vformat(text, args, kwargs)

        return format_


def _format_filter(value: Any, *args: Any, **kwargs: Any) -> str:
    """Jinja's ``format`` filter (``"%s"|format(x)``), bounded like ``%``."""
    return str(safe_mod(str(value), kwargs or args))


_ENV = _Sandbox(undefined=jinja2.StrictUndefined, autoescape=False)
_ENV.filters["format"] = _format_filter
_ENV.filters.update(bounded_filters(_ENV.filters))
_ENV.globals["range"] = bounded_range
_ENV.globals["lipsum"] = bounded_lipsum
_GLOBALS = frozenset(_ENV.globals)


class TemplateError(ValueError):
    """A template that cannot be compiled (found before a run)."""


class TemplateFailed(RuntimeError):
    """A template raised while it was rendered; the message names the template."""


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled template. ``names`` are the variables it reads."""

    source: str
    template: jinja2.Template
    names: frozenset[str]

    def render(self, variables: Mapping[str, Any]) -> str:
        """The rendered text; `TemplateFailed` names the template and the error."""
        try:
            return bounded_output(self.template.generate(variables))
        except jinja2.UndefinedError as exc:
            raise TemplateFailed(f"template {self.source!r} failed: {exc.message}") from None
        except jinja2.TemplateError as exc:
            raise TemplateFailed(f"template {self.source!r} failed: {exc}") from None
        except Exception as exc:
            raise TemplateFailed(
                f"template {self.source!r} failed: {type(exc).__name__}: {exc}"
            ) from None


@lru_cache(maxsize=4096)
def compile_template(source: str, names: frozenset[str] = BASE_NAMES) -> Template:
    """Compile ``source``; `TemplateError` says what is wrong (syntax, unknown names)."""
    if not isinstance(source, str):
        raise TemplateError(f"template must be a string, got {type(source).__name__}")
    try:
        parsed = _ENV.parse(source)
        template = _ENV.from_string(parsed)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"invalid template {source!r}: {exc.message} (line {exc.lineno})"
        ) from None
    used = meta.find_undeclared_variables(parsed)
    unknown = sorted(used - names - _GLOBALS)
    if unknown:
        raise TemplateError(
            f"template {source!r} uses unknown name {unknown[0]!r}; "
            f"templates can use {', '.join(sorted(names))}"
        )
    return Template(source, template, frozenset(used & names))
