"""Persistent memory: per-agent facts that outlive a flow (0.1.5's API)."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable
from uuid import UUID


@dataclass
class MemoryEntry:
    """One entry of an agent's persistent memory."""

    key: str
    value: str
    agent_id: UUID
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    metadata: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class PersistentMemory(Protocol):
    """Cross-flow memory of an agent. Implementations may be in memory, SQLite, Redis..."""

    def read(self, agent_id: UUID, key: str) -> str | None:
        """The value of ``key``, or None."""
        ...

    def write(self, agent_id: UUID, key: str, value: str) -> None:
        """Create or overwrite ``key``."""
        ...

    def update(self, agent_id: UUID, key: str, value: str) -> None:
        """Change ``key`` (created when absent)."""
        ...

    def delete(self, agent_id: UUID, key: str) -> None:
        """Remove ``key`` (no error when absent)."""
        ...

    def search(self, agent_id: UUID, query: str, limit: int = 10) -> list[MemoryEntry]:
        """Entries matching ``query``."""
        ...

    def list_keys(self, agent_id: UUID) -> list[str]:
        """Every key of the agent."""
        ...


def search_entries(entries: Iterable[MemoryEntry], query: str, limit: int) -> list[MemoryEntry]:
    """The first ``limit`` of ``entries`` whose key or value contains ``query``,
    ignoring case: what every `PersistentMemory.search` answers."""
    needle = query.lower()
    found = [e for e in entries if needle in e.key.lower() or needle in e.value.lower()]
    return found[:limit]


class InMemoryPersistence:
    """Dict-backed `PersistentMemory`; lives as long as the process. Thread-safe."""

    def __init__(self) -> None:
        self._entries: dict[UUID, dict[str, MemoryEntry]] = {}
        self._lock = threading.Lock()

    def read(self, agent_id: UUID, key: str) -> str | None:
        entry = self._entries.get(agent_id, {}).get(key)
        return entry.value if entry is not None else None

    def write(self, agent_id: UUID, key: str, value: str) -> None:
        now = datetime.now(UTC)
        with self._lock:
            self._entries.setdefault(agent_id, {})[key] = MemoryEntry(
                key=key, value=value, agent_id=agent_id, created_at=now, updated_at=now
            )

    def update(self, agent_id: UUID, key: str, value: str) -> None:
        with self._lock:
            entry = self._entries.get(agent_id, {}).get(key)
            if entry is not None:
                entry.value = value
                entry.updated_at = datetime.now(UTC)
                return
        self.write(agent_id, key, value)

    def delete(self, agent_id: UUID, key: str) -> None:
        with self._lock:
            self._entries.get(agent_id, {}).pop(key, None)

    def search(self, agent_id: UUID, query: str, limit: int = 10) -> list[MemoryEntry]:
        """Case-insensitive substring match on keys and values."""
        return search_entries(self._entries.get(agent_id, {}).values(), query, limit)

    def list_keys(self, agent_id: UUID) -> list[str]:
        return list(self._entries.get(agent_id, {}))


async def _resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class AgentMemory:
    """One ``async`` face over a `PersistentMemory` whose methods are ``def`` (the
    in-memory one) or ``async def`` (durable stores): executors ``await`` every
    method whatever the store. Given to executors as ``context.agent_memory``."""

    def __init__(self, target: Any) -> None:
        self.target = target

    async def read(self, agent_id: UUID, key: str) -> str | None:
        return await _resolve(self.target.read(agent_id, key))  # type: ignore[no-any-return]

    async def write(self, agent_id: UUID, key: str, value: str) -> None:
        await _resolve(self.target.write(agent_id, key, value))

    async def update(self, agent_id: UUID, key: str, value: str) -> None:
        await _resolve(self.target.update(agent_id, key, value))

    async def delete(self, agent_id: UUID, key: str) -> None:
        await _resolve(self.target.delete(agent_id, key))

    async def search(self, agent_id: UUID, query: str, limit: int = 10) -> list[MemoryEntry]:
        return await _resolve(self.target.search(agent_id, query, limit))  # type: ignore[no-any-return]

    async def list_keys(self, agent_id: UUID) -> list[str]:
        return await _resolve(self.target.list_keys(agent_id))  # type: ignore[no-any-return]
