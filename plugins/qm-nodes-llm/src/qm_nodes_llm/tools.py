"""Tools an Agent1 node may call: a name, a description, a JSON schema of the arguments,
and a function. Plugins register them through ``qm_register_llm_tools``."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from qm_nodes_llm.types import ToolSpec

#: The extension hook's kind: ``load_plugins().registry(TOOL_KIND)``.
TOOL_KIND = "llm_tool"


class ToolError(RuntimeError):
    """A tool call failed; the message goes back to the model as the call's result."""


@dataclass(frozen=True)
class Tool:
    """A callable tool. ``fn`` (``def`` or ``async def``) receives the validated arguments
    as keyword arguments; a blocking ``def`` runs in a worker thread, never on the loop.
    Its return value is sent to the model as text (JSON for non-strings)."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    arguments_model: type[BaseModel] | None = None

    @classmethod
    def from_function(
        cls, fn: Callable[..., Any], *, name: str | None = None, description: str | None = None
    ) -> Tool:
        """A tool from a function: its name, its docstring's first paragraph as the
        description, and a JSON schema of its typed parameters."""
        model = arguments_model(fn)
        schema = model.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        doc = inspect.getdoc(fn) or ""
        return cls(
            name=name or fn.__name__,
            description=description if description is not None else doc.split("\n\n")[0],
            parameters=schema,
            fn=fn,
            arguments_model=model,
        )

    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.parameters)

    async def invoke(self, arguments: Mapping[str, Any]) -> str:
        """Call the tool; `ToolError` with a message for the model when the arguments do not
        validate or the function raises."""
        kwargs = dict(arguments)
        if "_raw" in kwargs and len(kwargs) == 1:
            raise ToolError(f"the arguments are not a JSON object: {kwargs['_raw']!r}")
        if self.arguments_model is not None:
            try:
                validated = self.arguments_model.model_validate(kwargs)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}"
                    for e in exc.errors()
                )
                raise ToolError(f"invalid arguments: {problems}") from None
            kwargs = {k: getattr(validated, k) for k in type(validated).model_fields}
        try:
            if inspect.iscoroutinefunction(self.fn):
                result = await self.fn(**kwargs)
            else:
                result = await asyncio.to_thread(self.fn, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
        except ToolError:
            raise
        except Exception as exc:
            raise ToolError(f"{type(exc).__name__}: {exc}") from None
        return result if isinstance(result, str) else json.dumps(result, default=str)


def arguments_model(fn: Callable[..., Any]) -> type[BaseModel]:
    """A pydantic model of ``fn``'s parameters (annotations and defaults)."""
    fields: dict[str, Any] = {}
    hints = _hints(fn)
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(param.name, Any)
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (annotation, default)
    return create_model(f"{fn.__name__}_arguments", __config__=ConfigDict(extra="forbid"), **fields)


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        import typing

        return typing.get_type_hints(fn)
    except Exception:
        return {}


def function_tool(
    fn: Callable[..., Any], *, name: str | None = None, description: str | None = None
) -> Callable[[Any], Tool]:
    """A tool factory for ``qm_register_llm_tools``: ``register("add", function_tool(add))``."""

    def create(settings: Any) -> Tool:
        return Tool.from_function(fn, name=name, description=description)

    create.__doc__ = description or (inspect.getdoc(fn) or "").split("\n\n")[0]
    return create


def as_tool(obj: Any, name: str) -> Tool:
    """``obj`` if it is a `Tool`; a tool built from it if it is a function."""
    if isinstance(obj, Tool):
        return obj
    if callable(obj):
        return Tool.from_function(obj, name=name)
    raise TypeError(f"tool {name!r}: the factory returned {type(obj).__name__}, not a Tool")


class ToolSource(Protocol):
    """Gives Agent1 executors their tools by name."""

    def names(self) -> list[str]: ...

    def get(self, name: str) -> Tool: ...


class UnknownToolError(LookupError):
    """An Agent1 node allows a tool nobody registered."""


class PluginTools:
    """Tools registered by installed plugins, created once each with their settings."""

    def __init__(self, settings: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._settings = dict(settings or {})
        self._registry: Any = None
        self._tools: dict[str, Tool] = {}
        self._lock = threading.Lock()

    @property
    def registry(self) -> Any:
        if self._registry is None:
            from quartermaster_engine.plugins.loader import load_plugins

            self._registry = load_plugins().registry(TOOL_KIND)
        return self._registry

    def names(self) -> list[str]:
        return sorted(self.registry.names())

    def get(self, name: str) -> Tool:
        with self._lock:
            tool = self._tools.get(name)
            if tool is None:
                if name not in self.registry:
                    raise UnknownToolError(
                        f"unknown tool {name!r}; installed: {', '.join(self.names()) or 'none'}"
                    )
                registration = self.registry.get(name)
                raw = self._settings.get(name, {})
                settings = registration.config_model.model_validate(dict(raw))
                tool = as_tool(registration.create(settings), name)
                self._tools[name] = tool
            return tool


class StaticTools:
    """Ready tools (tests, embedding applications)."""

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]]) -> None:
        self._tools: dict[str, Tool] = {}
        for item in tools:
            tool = item if isinstance(item, Tool) else Tool.from_function(item)
            self._tools[tool.name] = tool

    def names(self) -> list[str]:
        return sorted(self._tools)

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownToolError(
                f"unknown tool {name!r}; installed: {', '.join(self.names()) or 'none'}"
            ) from None
