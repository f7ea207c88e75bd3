"""qm-store-redis: a durable Quartermaster store on Redis, through redis.asyncio.

Use it as ``store=RedisStore(url, key_prefix=..., ttl_seconds=...)`` or from a
configuration (``store = {name = "redis", url = "..."}``)::

    from qm_store_redis import RedisStore

    store = RedisStore("redis://localhost:6379/0", key_prefix="qm", ttl_seconds=86400)
    runner = FlowRunner(graph, registry, store=store)
"""

from qm_store_redis.persistent import RedisPersistentMemory
from qm_store_redis.settings import RedisSettings
from qm_store_redis.store import RedisStore, RedisUnavailableError

__all__ = ["RedisPersistentMemory", "RedisSettings", "RedisStore", "RedisUnavailableError"]
