"""`RedisStore`: the whole store contract on Redis, through redis.asyncio.

The store is composed of one part per ability, each in a module of its own:
`qm_store_redis.base` (settings, clients, scripts, errors), `.commits` (fenced
commits and leases), `.flows` (flow records and their index), `.reads`
(snapshots, changes, events), `.graphs`, `.limits` (slots, windows, usage,
waiters), `.timed` (timers, schedules), `.live` (pub/sub) and `.legacy` (the
0.1.5 contract).
"""

from __future__ import annotations

from qm_store_redis.base import RedisUnavailableError
from qm_store_redis.commits import RedisCommits
from qm_store_redis.flows import RedisFlows
from qm_store_redis.legacy import RedisLegacy
from qm_store_redis.live import RedisLive
from qm_store_redis.reads import RedisReads
from qm_store_redis.settings import RedisSettings
from qm_store_redis.timed import RedisTimed

__all__ = ["RedisStore", "RedisUnavailableError"]


class RedisStore(RedisCommits, RedisFlows, RedisReads, RedisLegacy, RedisTimed, RedisLive):
    """A durable store on Redis 7 (no modules needed), Cluster-safe.

    Every node commit is one Lua script over the keys of its flow, which share
    the hash tag ``{flow id}`` (one Cluster slot); a flow's graph is stored once
    per distinct graph. ``ttl_seconds`` makes the keys of a flow expire that
    long after it ends. The store works from any number of event loops (one
    client per loop) and is safe to share between threads.

    A lost server makes calls fail within ``timeout_seconds`` with
    `RedisUnavailableError`; commits are never retried blindly, so a commit is
    either applied once or not at all, and ``recover`` continues the flow.
    """

    @classmethod
    def from_settings(cls, settings: RedisSettings) -> RedisStore:
        """The store a ``[store]`` section with ``name = "redis"`` describes."""
        return cls(
            settings.url,
            key_prefix=settings.key_prefix,
            ttl_seconds=settings.ttl_seconds,
            timeout_seconds=settings.timeout_seconds,
            cluster=settings.cluster,
        )
