"""`RedisPersistentMemory`: per-agent memory that outlives flows and processes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from redis.exceptions import RedisClusterException, RedisError

from qm_store_redis import scripts
from qm_store_redis.codec import as_dict, dumps, loads, text
from quartermaster_engine.memory.persistent_memory import MemoryEntry

if TYPE_CHECKING:
    from qm_store_redis.base import RedisBase


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _entry(agent_id: UUID, key: str, raw: bytes) -> MemoryEntry:
    data: dict[str, Any] = loads(raw)
    return MemoryEntry(
        key=key,
        value=data["value"],
        agent_id=agent_id,
        created_at=datetime.fromisoformat(data["created_at"]),
        updated_at=datetime.fromisoformat(data["updated_at"]),
        metadata=dict(data.get("metadata") or {}),
    )


class RedisPersistentMemory:
    """0.1.5's `PersistentMemory` protocol with ``async`` methods, on a `RedisStore`.

    One hash per agent (``<prefix>:agent:{<agent id>}``), an entry per key with
    its value and timestamps. Get one with ``store.persistent_memory()``.
    """

    def __init__(self, store: RedisBase) -> None:
        self._store = store

    async def _call(self, command: str, agent_id: UUID, *args: Any) -> Any:
        store = self._store
        client = store._clients.get()
        try:
            if command == "update":
                key = store._keys.agent(agent_id)
                return await store._eval(client, scripts.MEMORY_UPDATE, (key,), args)
            return await client.command(command, store._keys.agent(agent_id), *args)
        except (RedisError, RedisClusterException) as exc:
            raise store._error(exc) from exc

    async def read(self, agent_id: UUID, key: str) -> str | None:
        """The value of ``key``, or None."""
        raw = await self._call("HGET", agent_id, key)
        return None if raw is None else str(loads(raw)["value"])

    async def write(self, agent_id: UUID, key: str, value: str) -> None:
        """Create or overwrite ``key``."""
        now = _now()
        entry = {"value": value, "created_at": now, "updated_at": now, "metadata": {}}
        await self._call("HSET", agent_id, key, dumps(entry, f"memory entry {key!r}"))

    async def update(self, agent_id: UUID, key: str, value: str) -> None:
        """Change ``key``'s value, keeping when it was created (created when absent)."""
        await self._call("update", agent_id, key, value, _now())

    async def delete(self, agent_id: UUID, key: str) -> None:
        """Remove ``key`` (no error when absent)."""
        await self._call("HDEL", agent_id, key)

    async def search(self, agent_id: UUID, query: str, limit: int = 10) -> list[MemoryEntry]:
        """Entries whose key or value contains ``query`` (case-insensitive), by key."""
        needle = query.lower()
        raw = {text(k): v for k, v in as_dict(await self._call("HGETALL", agent_id)).items()}
        found = []
        for key in sorted(raw):
            entry = _entry(agent_id, key, raw[key])
            if needle in entry.key.lower() or needle in entry.value.lower():
                found.append(entry)
                if len(found) >= limit:
                    break
        return found

    async def list_keys(self, agent_id: UUID) -> list[str]:
        """Every key of the agent, sorted."""
        return sorted(text(k) for k in await self._call("HKEYS", agent_id))
