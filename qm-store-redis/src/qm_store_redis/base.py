"""The shared core of `RedisStore`: settings, clients per event loop, scripts, errors."""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar
from uuid import UUID

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from qm_store_redis import scripts
from qm_store_redis.codec import text
from qm_store_redis.keys import KeySpace
from qm_store_redis.persistent import RedisPersistentMemory
from qm_store_redis.settings import check_prefix, check_url
from qm_store_redis.wire import Client, ClusterLoopClient, LoopClient
from quartermaster_engine.redaction import redact_text, redact_url
from quartermaster_engine.stores.base import FlowNotFoundError, StoreError
from quartermaster_engine.stores.fencing import (
    duplicate_commit,
    flow_ended,
    lease_held,
    not_waiting,
    stale_lease,
)
from quartermaster_engine.stores.loops import PerLoop
from quartermaster_engine.stores.records import Commit, FlowStatus, Lease
from quartermaster_engine.stores.servers import os_reason
from quartermaster_graph.models import GraphSpec

P = ParamSpec("P")
T = TypeVar("T")

#: What redis-py raises: RedisClusterException is not a RedisError.
REDIS_ERRORS = (RedisError, RedisClusterException)

B = TypeVar("B", bound="RedisBase")


class RedisUnavailableError(StoreError):
    """The Redis server could not be reached, or did not answer in time."""


def redis_errors(
    method: Callable[Concatenate[B, P], Awaitable[T]],
) -> Callable[Concatenate[B, P], Awaitable[T]]:
    """Turn redis-py errors into store errors that name the server."""

    @functools.wraps(method)
    async def guarded(self: B, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(self, *args, **kwargs)
        except REDIS_ERRORS as exc:
            raise self._error(exc) from exc

    return guarded


class RedisBase:
    """What every part of `RedisStore` shares: its settings, one client per event
    loop, script calls, and the store errors of Redis failures and refusals."""

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        key_prefix: str = "qm",
        ttl_seconds: float | None = None,
        timeout_seconds: float = 5.0,
        cluster: bool = False,
    ) -> None:
        self.url = check_url(url)
        self.key_prefix = check_prefix(key_prefix)
        if ttl_seconds is not None and ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be positive or None, got {ttl_seconds!r}")
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds!r}")
        self.ttl_seconds = ttl_seconds
        self.timeout_seconds = timeout_seconds
        self.cluster = cluster
        self._ttl_ms = 0 if ttl_seconds is None else max(1, int(ttl_seconds * 1000))
        self._safe_url = redact_url(url)
        self._keys = KeySpace(key_prefix)
        #: Limit keys this process has listed in the slot index (`qm_store_redis.slots`).
        self._indexed_slots: set[str] = set()
        #: Limit keys this process has listed in the waiter index.
        self._indexed_waits: set[str] = set()
        self._indexed_usage: set[str] = set()
        #: Whether a script may touch keys of several hash tags (not on a Redis
        #: Cluster node, which refuses that: CROSSSLOT); asked once (`_spans_tags`).
        self._any_tags: bool | None = None
        self._clients: PerLoop[Client] = PerLoop(self._new_client)
        self._graphs: dict[str, GraphSpec] = {}
        self._graphs_lock = threading.Lock()

    def describe(self) -> str:
        """``redis <url>`` (password hidden), for error messages."""
        return f"redis {self._safe_url}"

    def __repr__(self) -> str:
        return f"RedisStore({self._safe_url!r}, key_prefix={self.key_prefix!r})"

    # -- connections -----------------------------------------------------------------

    def _new_client(self) -> Client:
        timeout = self.timeout_seconds
        # No automatic retries: a commit whose reply was lost may have been
        # applied, and running it again would append its record twice.
        # RESP2 whatever redis-py's default: raw replies keep one shape.
        options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 0),
            "protocol": 2,
        }
        if self.cluster:
            # Redirections (MOVED, ASK) are still followed: those commands never ran.
            return ClusterLoopClient(RedisCluster.from_url(self.url, **options))
        return LoopClient(Redis.from_url(self.url, retry_on_timeout=False, **options), timeout)

    def _error(self, exc: Exception) -> StoreError:
        if isinstance(exc, RedisConnectionError | RedisTimeoutError):
            reason = os_reason(exc)
            return RedisUnavailableError(
                f"Redis server {self._safe_url} is unavailable{reason}: {redact_text(str(exc))}"
            )
        return StoreError(
            f"Redis server {self._safe_url} failed: {type(exc).__name__}: {redact_text(str(exc))}"
        )

    async def _eval(
        self, client: Client, script: scripts.Script, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        try:
            return await client.command("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            # The server restarted or flushed its scripts: EVAL caches it again.
            return await client.command("EVAL", script.source, len(keys), *keys, *args)

    @redis_errors
    async def ping(self) -> None:
        """Check that the server answers; `RedisUnavailableError` naming it if not."""
        await self._clients.get().command("PING")

    async def close(self) -> None:
        """Close the connections of every event loop that used the store. Safe twice;
        a later call opens new connections."""
        await self._clients.close()

    def persistent_memory(self) -> RedisPersistentMemory:
        """Per-agent memory kept in this Redis under this store's prefix."""
        return RedisPersistentMemory(self)

    async def _spans_tags(self, client: Client) -> bool:
        """Whether one script may touch keys of several hash tags: not on Redis Cluster
        (``cluster = true``, or a server in cluster mode; asked once per store)."""
        if self._any_tags is None:
            if self.cluster:
                self._any_tags = False
            else:
                info = await client.command("INFO", "cluster")
                text = info.decode() if isinstance(info, bytes) else str(info)
                self._any_tags = "cluster_enabled:1" not in text
        return self._any_tags

    def _refusal(
        self,
        flow_id: UUID,
        reply: list[Any],
        commit: Commit | None = None,
        epoch: int | None = None,
    ) -> Exception:
        """The store error for a script's refusal (see scripts._FENCE and COMMIT)."""
        code = int(reply[0])
        if code == 0:
            return FlowNotFoundError(f"no flow {flow_id} in {self.describe()}")
        if code == -1:
            return flow_ended(flow_id, FlowStatus(text(reply[1])))
        if code == -2:
            if epoch is None:
                epoch = -1 if commit is None or commit.epoch is None else commit.epoch
            return stale_lease(flow_id, epoch, int(reply[2]), text(reply[3]) or None)
        if code == -5:
            lease = Lease(text(reply[1]), int(reply[2]), float(reply[3]))
            return lease_held(flow_id, lease)
        if commit is not None and code == -3 and commit.done is not None:
            attempt = None if commit.record is None else commit.record.attempt
            return duplicate_commit(flow_id, commit.done, attempt)
        if commit is not None and code == -4 and commit.answers is not None:
            return not_waiting(flow_id, commit.answers)
        return StoreError(f"unexpected reply {reply!r} from {self.describe()}")
