"""`PostgresPersistentMemory`: 0.1.5's `PersistentMemory` in the store's database, so
an agent's memory survives processes and machines."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from qm_store_postgres.codec import loads
from qm_store_postgres.database import execute, fetch, fetchval
from quartermaster_engine.memory.persistent_memory import MemoryEntry, search_entries

if TYPE_CHECKING:
    from qm_store_postgres.database import Database
    from qm_store_postgres.queries import Queries


class PostgresPersistentMemory:
    """Per-agent key/value memory (0.1.5's `PersistentMemory`, with ``async def``
    methods). Get it from `PostgresStore.persistent_memory`."""

    def __init__(self, db: Database, sql: Queries) -> None:
        self._db = db
        self._sql = sql

    async def read(self, agent_id: UUID, key: str) -> str | None:
        """The value of ``key``, or None."""
        value: str | None = await self._db.run(fetchval, self._sql.agent_read, agent_id, key)
        return value

    async def write(self, agent_id: UUID, key: str, value: str) -> None:
        """Create or overwrite ``key``."""
        await self._db.run(execute, self._sql.agent_write, agent_id, key, value, time.time())

    async def update(self, agent_id: UUID, key: str, value: str) -> None:
        """Change ``key``'s value, keeping when it was created (created when absent)."""
        await self._db.run(execute, self._sql.agent_update, agent_id, key, value, time.time())

    async def delete(self, agent_id: UUID, key: str) -> None:
        """Remove ``key`` (no error when absent)."""
        await self._db.run(execute, self._sql.agent_delete, agent_id, key)

    async def search(self, agent_id: UUID, query: str, limit: int = 10) -> list[MemoryEntry]:
        """Entries whose key or value contains ``query`` (case-insensitive), oldest first."""
        rows = await self._db.run(fetch, self._sql.agent_entries, agent_id)
        return search_entries((_entry(agent_id, row) for row in rows), query, limit)

    async def list_keys(self, agent_id: UUID) -> list[str]:
        """Every key of the agent, oldest first."""
        return [row[0] for row in await self._db.run(fetch, self._sql.agent_entries, agent_id)]


def _entry(agent_id: UUID, row: Any) -> MemoryEntry:
    key, value, created, updated, metadata = row
    return MemoryEntry(
        key=key,
        value=value,
        agent_id=agent_id,
        created_at=datetime.fromtimestamp(created, UTC),
        updated_at=datetime.fromtimestamp(updated, UTC),
        metadata=loads(metadata) if metadata else {},
    )
