"""Plugin module registered under the entry-point group 'quartermaster'."""

from __future__ import annotations

from qm_store_redis.settings import RedisSettings
from qm_store_redis.store import RedisStore
from quartermaster_engine.plugins import Register, hookimpl


def create_store(settings: RedisSettings) -> RedisStore:
    """The ``redis`` store a ``[store]`` section describes."""
    return RedisStore.from_settings(settings)


@hookimpl
def qm_register_stores(register: Register) -> None:
    register(
        "redis",
        create_store,
        config_model=RedisSettings,
        description="Redis 7 (redis.asyncio): atomic Lua commits, Cluster-safe keys, TTL",
    )
