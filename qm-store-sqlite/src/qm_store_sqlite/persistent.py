"""`SQLitePersistentMemory`: 0.1.5's `PersistentMemory` in the store's file, so an
agent's memory survives processes."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from quartermaster_engine.memory.persistent_memory import MemoryEntry, search_entries

if TYPE_CHECKING:
    from qm_store_sqlite.connection import Database

_COLUMNS = "key, value, created_at, updated_at, metadata"


class SQLitePersistentMemory:
    """Per-agent key/value memory (0.1.5's `PersistentMemory`, with ``async def``
    methods). Get it from `SQLiteStore.persistent_memory`; it shares the store's
    connection and file."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def read(self, agent_id: UUID, key: str) -> str | None:
        """The value of ``key``, or None."""
        row = await self._db.run(_read, agent_id.bytes, key)
        return None if row is None else str(row[0])

    async def write(self, agent_id: UUID, key: str, value: str) -> None:
        """Create or overwrite ``key``."""
        await self._db.write(_write, agent_id.bytes, key, value, time.time())

    async def update(self, agent_id: UUID, key: str, value: str) -> None:
        """Change ``key``'s value (created when absent)."""
        await self._db.write(_update, agent_id.bytes, key, value, time.time())

    async def delete(self, agent_id: UUID, key: str) -> None:
        """Remove ``key`` (no error when absent)."""
        await self._db.write(_delete, agent_id.bytes, key)

    async def search(self, agent_id: UUID, query: str, limit: int = 10) -> list[MemoryEntry]:
        """Entries whose key or value contains ``query`` (case-insensitive), oldest first."""
        rows = await self._db.run(_entries, agent_id.bytes)
        return search_entries((_entry(agent_id, row) for row in rows), query, limit)

    async def list_keys(self, agent_id: UUID) -> list[str]:
        """Every key of the agent, oldest first."""
        return [row[0] for row in await self._db.run(_entries, agent_id.bytes)]


def _entry(agent_id: UUID, row: tuple[Any, ...]) -> MemoryEntry:
    key, value, created, updated, metadata = row
    return MemoryEntry(
        key=key,
        value=value,
        agent_id=agent_id,
        created_at=datetime.fromtimestamp(created, UTC),
        updated_at=datetime.fromtimestamp(updated, UTC),
        metadata=json.loads(metadata) if metadata else {},
    )


def _read(db: sqlite3.Connection, agent: bytes, key: str) -> Any:
    return db.execute(
        "SELECT value FROM qm_agent_memory WHERE agent_id = ? AND key = ?", (agent, key)
    ).fetchone()


def _write(db: sqlite3.Connection, agent: bytes, key: str, value: str, now: float) -> None:
    db.execute(
        "INSERT OR REPLACE INTO qm_agent_memory (agent_id, key, value, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (agent, key, value, now, now),
    )


def _update(db: sqlite3.Connection, agent: bytes, key: str, value: str, now: float) -> None:
    db.execute(
        "INSERT INTO qm_agent_memory (agent_id, key, value, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (agent_id, key) "
        "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        (agent, key, value, now, now),
    )


def _delete(db: sqlite3.Connection, agent: bytes, key: str) -> None:
    db.execute("DELETE FROM qm_agent_memory WHERE agent_id = ? AND key = ?", (agent, key))


def _entries(db: sqlite3.Connection, agent: bytes) -> list[Any]:
    return db.execute(
        f"SELECT {_COLUMNS} FROM qm_agent_memory WHERE agent_id = ? ORDER BY created_at, key",
        (agent,),
    ).fetchall()
