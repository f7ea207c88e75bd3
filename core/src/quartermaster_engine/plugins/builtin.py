"""The core's own plugin: the built-ins register through the same hooks as any plugin.

- stores: ``memory`` (`InMemoryStore`)
- dispatchers: ``sync`` (`SyncDispatcher`), ``async`` (`AsyncDispatcher`)
- node executors: ``Start1``, ``End1``
- event sinks: ``console`` (`ConsoleSink`), ``jsonl`` (`JsonlSink`)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from quartermaster_engine.control_nodes import BackExecutor, EndExecutor, StartExecutor
from quartermaster_engine.dispatchers.async_dispatcher import AsyncDispatcher
from quartermaster_engine.dispatchers.sync_dispatcher import SyncDispatcher
from quartermaster_engine.plugins.hookspecs import hookimpl
from quartermaster_engine.plugins.registry import NoSettings, Register
from quartermaster_engine.sinks.console import ConsoleSink
from quartermaster_engine.sinks.jsonl import JsonlSink
from quartermaster_engine.stores.memory_store import InMemoryStore


def resolve_path(value: Path, info: ValidationInfo) -> Path:
    """A relative path is relative to the config file's folder (``config_dir`` in the
    validation context), else to the working directory."""
    if value.is_absolute():
        return value
    base = (info.context or {}).get("config_dir") if info.context else None
    return (Path(base) if base is not None else Path.cwd()) / value


class AsyncSettings(BaseModel):
    """Settings of the ``async`` dispatcher."""

    model_config = ConfigDict(extra="forbid")

    max_concurrency: int | None = Field(default=None, ge=1)


class ConsoleSettings(BaseModel):
    """Settings of the ``console`` sink."""

    model_config = ConfigDict(extra="forbid")

    stream: Literal["stderr", "stdout"] = "stderr"
    tokens: bool = True


class JsonlSettings(BaseModel):
    """Settings of the ``jsonl`` sink."""

    model_config = ConfigDict(extra="forbid")

    path: Path
    append: bool = True

    @field_validator("path")
    @classmethod
    def _relative_to_config(cls, value: Path, info: ValidationInfo) -> Path:
        return resolve_path(value, info)


def _memory_store(settings: Any) -> InMemoryStore:
    """Everything in process memory; nothing survives the process."""
    return InMemoryStore()


def _sync(settings: Any) -> SyncDispatcher:
    """One activation at a time, inline, in a deterministic order."""
    return SyncDispatcher()


def _async(settings: AsyncSettings) -> AsyncDispatcher:
    """Concurrent asyncio tasks; blocking executors in the loop's thread pool."""
    return AsyncDispatcher(max_concurrency=settings.max_concurrency)


def _console(settings: ConsoleSettings) -> ConsoleSink:
    """A readable line per event on stderr or stdout."""
    stream = sys.stdout if settings.stream == "stdout" else sys.stderr
    return ConsoleSink(stream, tokens=settings.tokens)


def _jsonl(settings: JsonlSettings) -> JsonlSink:
    """One JSON event per line, flushed per event."""
    return JsonlSink(settings.path, append=settings.append)


@hookimpl
def qm_register_stores(register: Register) -> None:
    register("memory", _memory_store, config_model=NoSettings)


@hookimpl
def qm_register_dispatchers(register: Register) -> None:
    register("sync", _sync, config_model=NoSettings)
    register("async", _async, config_model=AsyncSettings)


@hookimpl
def qm_register_node_executors(register: Register) -> None:
    register("Start1", lambda settings: StartExecutor(), description="Outputs the flow input.")
    register("End1", lambda settings: EndExecutor(), description="Outputs what reached it.")
    register(
        "Back1",
        lambda settings: BackExecutor(),
        description="Loops back to Start (in a sub-graph: returns to the parent).",
    )


@hookimpl
def qm_register_event_sinks(register: Register) -> None:
    register("console", _console, config_model=ConsoleSettings)
    register("jsonl", _jsonl, config_model=JsonlSettings)
