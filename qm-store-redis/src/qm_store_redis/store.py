"""`RedisStore`: the whole store contract on Redis, through redis.asyncio."""

from __future__ import annotations

import functools
import math
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar
from uuid import UUID

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from qm_store_redis import moves, schedules, scripts, slots, timers
from qm_store_redis.codec import (
    activation_field,
    as_dict,
    delivery_line,
    dumps,
    flow_fields,
    flow_record,
    graph_json,
    loads,
    parse_slot,
    slot_field,
    text,
)
from qm_store_redis.keys import COMMIT_KEYS, KeySpace
from qm_store_redis.live import RedisLiveSubscription
from qm_store_redis.persistent import RedisPersistentMemory
from qm_store_redis.settings import RedisSettings, check_prefix, check_url
from qm_store_redis.wire import Client, ClusterLoopClient, LoopClient, pack_command, pack_items
from quartermaster_engine.context.node_execution import NodeExecution
from quartermaster_engine.events import FlowEvent, event_from_dict
from quartermaster_engine.messaging.history import history_of
from quartermaster_engine.redaction import redact_text, redact_url
from quartermaster_engine.schedules.model import Schedule
from quartermaster_engine.stores.base import FlowExistsError, FlowNotFoundError, StoreError
from quartermaster_engine.stores.changes import (
    KEPT_CHANGES,
    FlowChanges,
    change_from_dict,
    change_to_dict,
    changes_after,
)
from quartermaster_engine.stores.fencing import (
    duplicate_commit,
    flow_ended,
    lease_held,
    not_waiting,
    stale_lease,
)
from quartermaster_engine.stores.loops import PerLoop
from quartermaster_engine.stores.records import (
    Activation,
    Commit,
    Delivery,
    FlowMove,
    FlowRecord,
    FlowSnapshot,
    FlowStatus,
    FlowUpdate,
    Lease,
)
from quartermaster_engine.stores.servers import os_reason
from quartermaster_engine.types import Message
from quartermaster_graph.models import GraphSpec

P = ParamSpec("P")
T = TypeVar("T")

#: How long an index entry may point at no flow before listing or pruning drops
#: it: a flow is indexed just before it is written, so a young dangling entry may
#: be a flow being created right now.
_DANGLING_GRACE = 60.0
_EVALSHA_COMMIT = pack_items(("EVALSHA", scripts.COMMIT.sha, COMMIT_KEYS))
_EVAL_COMMIT = pack_items(("EVAL", scripts.COMMIT.source, COMMIT_KEYS))
#: Parsed graphs kept in memory, by content hash.
_GRAPH_CACHE_SIZE = 32


#: What redis-py raises: RedisClusterException is not a RedisError.
_REDIS_ERRORS = (RedisError, RedisClusterException)


class RedisUnavailableError(StoreError):
    """The Redis server could not be reached, or did not answer in time."""


def _redis_errors(
    method: Callable[Concatenate[RedisStore, P], Awaitable[T]],
) -> Callable[Concatenate[RedisStore, P], Awaitable[T]]:
    """Turn redis-py errors into store errors that name the server."""

    @functools.wraps(method)
    async def guarded(self: RedisStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(self, *args, **kwargs)
        except _REDIS_ERRORS as exc:
            raise self._error(exc) from exc

    return guarded


class RedisStore:
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

    @_redis_errors
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

    # -- concurrency slots (`HoldsSlots`; `qm_store_redis.slots`) -------------------------

    @_redis_errors
    async def take_slot(
        self, key: str, holder: str, limit: int, now: float, expires_at: float
    ) -> int:
        """Take a slot of ``key`` in first-come order: 0, else the holder's place in
        the key's line (`HoldsSlots.take_slot`)."""
        client = self._clients.get()
        prefix = self._keys.prefix
        args = (holder, limit, repr(now), repr(expires_at))
        place = int(await self._eval(client, slots.TAKE_SLOT, slots.line_keys(prefix, key), args))
        # Listed once per process (one more round trip the first time only).
        if place == 0 and key not in self._indexed_slots:
            await client.command("SADD", slots.index_key(prefix), key)
            self._indexed_slots.add(key)
        if place and key not in self._indexed_waits:
            await client.command("SADD", slots.wait_index_key(prefix), key)
            self._indexed_waits.add(key)
        return place

    @_redis_errors
    async def renew_slot(self, key: str, holder: str, expires_at: float) -> bool:
        """Move the holder's slot's expiry; False if it lapsed."""
        keys = (slots.slot_key(self._keys.prefix, key),)
        kept = await self._eval(self._clients.get(), slots.RENEW, keys, (holder, repr(expires_at)))
        return bool(kept == 1)

    @_redis_errors
    async def release_slot(self, key: str, holder: str) -> None:
        """Give the holder's slot up."""
        await self._clients.get().command("ZREM", slots.slot_key(self._keys.prefix, key), holder)

    def releases_slots_in_commit(self) -> bool:
        """Its commit's script gives up `Commit.release_slots` (`ReleasesSlotsInCommit`),
        except on Redis Cluster (``cluster = true``, or a server found in cluster mode
        by a commit), whose scripts may not span the slots' keys."""
        return not self.cluster and self._any_tags is not False

    @_redis_errors
    async def take_request(self, key: str, limit: int, per: float, now: float) -> float:
        """Count a start of ``key`` if its window has room (0.0), else the seconds to wait."""
        member = f"{now!r}:{uuid.uuid4().hex[:12]}"
        args = (limit, repr(now), member, repr(now - per), max(1, math.ceil(per * 1000)))
        keys = (slots.rate_key(self._keys.prefix, key),)
        reply = await self._eval(self._clients.get(), slots.TAKE_REQUEST, keys, args)
        oldest = float(reply.decode() if isinstance(reply, bytes) else reply)
        return 0.0 if oldest == 0 else max(0.0, oldest + per - now)

    @_redis_errors
    async def requests_in_window(self, key: str, per: float, now: float) -> int:
        """Starts of ``key`` in the ``per`` seconds before ``now``, of every process."""
        rate = slots.rate_key(self._keys.prefix, key)
        return int(await self._clients.get().command("ZCOUNT", rate, f"({now - per!r}", "+inf"))

    @_redis_errors
    async def slots_in_use(self, now: float) -> dict[str, int]:
        """Unexpired slots per key, of every process using this Redis and prefix."""
        return await self._count_unexpired(slots.index_key, slots.slot_key, now)

    async def _count_unexpired(
        self, index: Callable[[str], str], member_set: Callable[[str, str], str], now: float
    ) -> dict[str, int]:
        """Per key listed in the ``index`` set, the members of its sorted set scored
        after ``now`` (keys with none left out)."""
        client = self._clients.get()
        prefix = self._keys.prefix
        counts: dict[str, int] = {}
        for raw in sorted(await client.command("SMEMBERS", index(prefix))):
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            members = member_set(prefix, key)
            count = int(await client.command("ZCOUNT", members, f"({now!r}", "+inf"))
            if count:
                counts[key] = count
        return counts

    # -- LLM tokens per limit key in its window (`LimitsTokens`; `qm_store_redis.slots`) ----

    @_redis_errors
    async def add_tokens(self, key: str, tokens: int, now: float, per: float) -> None:
        """Count ``tokens`` used by ``key`` at ``now``."""
        keys = (slots.tokens_key(self._keys.prefix, key),)
        args = slots.token_args(tokens, now, per)
        await self._eval(self._clients.get(), slots.ADD_TOKENS, keys, args)

    @_redis_errors
    async def tokens_in_window(self, key: str, per: float, now: float) -> list[tuple[float, int]]:
        """``key``'s token counts in the ``per`` seconds before ``now``, oldest first."""
        used = slots.tokens_key(self._keys.prefix, key)
        flat = await self._clients.get().command(
            "ZRANGE", used, f"({now - per!r}", "+inf", "BYSCORE", "WITHSCORES"
        )
        pairs = []
        for member, score in zip(flat[::2], flat[1::2], strict=True):
            text = member.decode() if isinstance(member, bytes) else str(member)
            at = float(score.decode() if isinstance(score, bytes) else score)
            pairs.append((at, int(text.split(":", 1)[0])))
        return pairs

    # -- usage of budget keys across flows (`KeepsKeyUsage`; `qm_store_redis.slots`) -------

    @_redis_errors
    async def add_key_usage(self, key: str, node_runs: int, tokens: int, cost: float) -> None:
        """Add to ``key``'s usage across flows."""
        client = self._clients.get()
        prefix = self._keys.prefix
        args = (int(node_runs), int(tokens), repr(float(cost)))
        await self._eval(client, slots.ADD_USAGE, (slots.usage_key(prefix, key),), args)
        if key not in self._indexed_usage:
            # Listed once per process (one more round trip the first time only).
            await client.command("SADD", slots.usage_index_key(prefix), key)
            self._indexed_usage.add(key)

    @_redis_errors
    async def keys_usage(self, keys: Sequence[str]) -> list[tuple[int, int, float]]:
        """``(node_runs, tokens, cost)`` of each of ``keys`` (zeros for a key not seen):
        one round trip (a pipeline of HMGETs; on Redis Cluster, one per node)."""
        hashes = [slots.usage_key(self._keys.prefix, key) for key in keys]
        client = self._clients.get()
        if len(hashes) == 1:
            raw = [await client.command("HMGET", hashes[0], "node_runs", "tokens", "cost")]
        else:
            raw = await client.batch([("HMGET", h, "node_runs", "tokens", "cost") for h in hashes])
        return [slots.usage_of(fields) for fields in raw]

    @_redis_errors
    async def key_usages(self) -> dict[str, tuple[int, int, float]]:
        """The usage of every budget key with some."""
        index = slots.usage_index_key(self._keys.prefix)
        found: dict[str, tuple[int, int, float]] = {}
        for raw in sorted(await self._clients.get().command("SMEMBERS", index)):
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            found[key] = (await self.keys_usage([key]))[0]
        return found

    # -- activations waiting for a limit key (`CountsWaiters`; `qm_store_redis.slots`) ------

    @_redis_errors
    async def mark_waiting(self, key: str, waiter: str, now: float, expires_at: float) -> None:
        """Record ``waiter`` as waiting for ``key`` until ``expires_at``."""
        client = self._clients.get()
        prefix = self._keys.prefix
        args = (waiter, repr(now), repr(expires_at))
        await self._eval(client, slots.MARK_WAITING, slots.line_keys(prefix, key)[:3], args)
        if key not in self._indexed_waits:
            # Listed once per process (one more round trip the first time only).
            await client.command("SADD", slots.wait_index_key(prefix), key)
            self._indexed_waits.add(key)

    @_redis_errors
    async def unmark_waiting(self, key: str, waiter: str) -> None:
        """The waiter waits no more."""
        keys = slots.line_keys(self._keys.prefix, key)[:3]
        await self._eval(self._clients.get(), slots.UNMARK_WAITING, keys, (waiter,))

    @_redis_errors
    async def waiting_counts(self, now: float) -> dict[str, int]:
        """Unexpired waiters per key, of every process using this Redis and prefix."""
        return await self._count_unexpired(slots.wait_index_key, slots.wait_key, now)

    # -- live messages (the `LiveChannel` ability) ---------------------------------------

    @_redis_errors
    async def publish_live(self, flow_id: UUID, message: bytes) -> None:
        """Publish ``message`` on the flow's channel (see `qm_store_redis.live`)."""
        await self._clients.get().command("PUBLISH", self._keys.live(flow_id), message)

    @_redis_errors
    async def subscribe_live(self, flow_id: UUID) -> RedisLiveSubscription:
        """Subscribe to the flow's channel on a connection of its own."""
        return await RedisLiveSubscription.open(
            self.url, self._keys.live(flow_id), self.timeout_seconds
        )

    # -- 0.1.5 contract ----------------------------------------------------------------

    @_redis_errors
    async def save_node_execution(
        self, flow_id: UUID, node_id: UUID, execution: NodeExecution
    ) -> None:
        keys = self._keys.flow(flow_id)
        data = dumps(execution.to_dict(), f"the record of node {node_id}")
        await self._eval(
            self._clients.get(),
            scripts.SAVE_RECORD,
            (keys[2], keys[3], keys[7]),
            (data, str(node_id)),
        )

    @_redis_errors
    async def get_node_execution(self, flow_id: UUID, node_id: UUID) -> NodeExecution | None:
        found = await self._latest(self._clients.get(), flow_id, [str(node_id)])
        return found.get(node_id)

    @_redis_errors
    async def get_all_node_executions(self, flow_id: UUID) -> dict[UUID, NodeExecution]:
        return await self._latest(self._clients.get(), flow_id, [])

    async def _latest(
        self, client: Client, flow_id: UUID, node_ids: list[str]
    ) -> dict[UUID, NodeExecution]:
        keys = self._keys.flow(flow_id)
        flat = await self._eval(client, scripts.LATEST_RECORDS, (keys[2], keys[3]), node_ids)
        return {
            UUID(text(flat[i])): NodeExecution.from_dict(loads(flat[i + 1]))
            for i in range(0, len(flat), 2)
        }

    @_redis_errors
    async def save_memory(self, flow_id: UUID, key: str, value: Any) -> None:
        data = dumps(value, f"memory value {key!r}")
        await self._clients.get().command("HSET", self._keys.flow(flow_id)[1], key, data)

    @_redis_errors
    async def get_memory(self, flow_id: UUID, key: str) -> Any:
        data = await self._clients.get().command("HGET", self._keys.flow(flow_id)[1], key)
        return None if data is None else loads(data)

    @_redis_errors
    async def get_all_memory(self, flow_id: UUID) -> dict[str, Any]:
        data = as_dict(await self._clients.get().command("HGETALL", self._keys.flow(flow_id)[1]))
        return {text(k): loads(v) for k, v in data.items()}

    @_redis_errors
    async def delete_memory(self, flow_id: UUID, key: str) -> None:
        await self._clients.get().command("HDEL", self._keys.flow(flow_id)[1], key)

    @_redis_errors
    async def save_messages(self, flow_id: UUID, node_id: UUID, messages: list[Message]) -> None:
        keys = self._keys.flow(flow_id)
        data = dumps([m.to_dict() for m in messages], f"the messages of node {node_id}")
        await self._eval(
            self._clients.get(), scripts.SAVE_MESSAGES, (keys[2], keys[7]), (str(node_id), data)
        )

    @_redis_errors
    async def get_messages(self, flow_id: UUID, node_id: UUID) -> list[Message]:
        """The history set with `save_messages`, unless a record of the node was
        committed since; else the history its latest record ends (rebuilt from the
        records it continues)."""
        client = self._clients.get()
        keys = self._keys.flow(flow_id)
        node = str(node_id)
        explicit, latest_at = await self._eval(
            client, scripts.MESSAGES_STATE, (keys[7], keys[3]), (node,)
        )
        if explicit is not None:
            stamp, _, data = explicit.partition(b"\t")
            if latest_at is None or int(latest_at) < int(stamp):
                return [Message.from_dict(m) for m in loads(data)]
        latest = (await self._latest(client, flow_id, [node])).get(node_id)
        if latest is None:
            return []
        if not latest.history_parents:
            return list(latest.messages)
        records = [
            NodeExecution.from_dict(loads(r))
            for r in await client.command("LRANGE", keys[2], 0, -1)
        ]
        return history_of(records, node_id)

    async def append_message(self, flow_id: UUID, node_id: UUID, message: Message) -> None:
        history = await self.get_messages(flow_id, node_id)
        history.append(message)
        await self.save_messages(flow_id, node_id, history)

    async def clear_flow(self, flow_id: UUID) -> None:
        await self.delete_flow(flow_id)

    # -- durable contract -----------------------------------------------------------------

    @_redis_errors
    async def create_flow(self, record: FlowRecord) -> None:
        digest, graph_data = graph_json(record.graph)
        client = self._clients.get()
        fid = str(record.flow_id)
        flow_key = self._keys.flow(record.flow_id)[0]
        # Index first: an entry whose flow is missing is ignored (and dropped later),
        # while a flow missing from the index would never be listed or pruned.
        await client.command("ZADD", self._keys.flows, "NX", record.updated_at, fid)
        await self._ref_graph(client, digest, graph_data, fid, "inf")
        created = await self._eval(
            client, scripts.CREATE_FLOW, (flow_key,), flow_fields(record, digest)
        )
        if not created:
            # Give back our reference unless the stored flow runs the same graph.
            existing = await client.command("HGET", flow_key, "graph")
            if existing is None or text(existing) != digest:
                await self._ref_graph(client, digest, "", fid, "", remove=True)
            else:
                ttl = await client.command("PTTL", flow_key)
                score = "inf" if ttl < 0 else str(int(time.time() * 1000) + ttl)
                await self._ref_graph(client, digest, "", fid, score)
            raise FlowExistsError(f"flow {record.flow_id} already exists in {self.describe()}")

    async def _ref_graph(
        self,
        client: Client,
        digest: str,
        graph_data: str,
        flow_id: str,
        score: str,
        *,
        remove: bool = False,
    ) -> None:
        """Add (or remove) a flow's reference to a stored graph; the graph expires
        with the last flow using it. The JSON is sent only when Redis lacks it."""
        keys = self._keys.graph(digest)
        mode = "remove" if remove else "add"
        now_ms = str(int(time.time() * 1000))
        args = ["", flow_id, score, now_ms, mode]
        if await self._eval(client, scripts.GRAPH_REF, keys, args) or remove or not graph_data:
            return
        args[0] = graph_data
        await self._eval(client, scripts.GRAPH_REF, keys, args)

    async def _graph(self, client: Client, digest: str, flow_id: UUID) -> GraphSpec:
        graph = self._graphs.get(digest)
        if graph is None:
            data = await client.command("GET", self._keys.graph(digest)[0])
            if data is None:
                raise StoreError(
                    f"the graph of flow {flow_id} ({digest}) is missing from {self.describe()}"
                )
            graph = GraphSpec.model_validate_json(data)
            with self._graphs_lock:  # loops of several threads share the cache
                if len(self._graphs) >= _GRAPH_CACHE_SIZE:
                    self._graphs.pop(next(iter(self._graphs)))
                self._graphs[digest] = graph
        return graph

    @_redis_errors
    async def get_flow(self, flow_id: UUID) -> FlowRecord | None:
        client = self._clients.get()
        fields = as_dict(await client.command("HGETALL", self._keys.flow(flow_id)[0]))
        if not fields:
            return None
        return flow_record(
            fields, flow_id, await self._graph(client, text(fields[b"graph"]), flow_id)
        )

    @_redis_errors
    async def update_flow(self, flow_id: UUID, update: FlowUpdate) -> None:
        client = self._clients.get()
        terminal = update.status.is_terminal
        if update.status is FlowStatus.PAUSED:
            await timers.index_if_timed(client, self._keys, flow_id)  # before: a hint
        reply = await self._eval(
            client,
            scripts.UPDATE_FLOW,
            self._keys.flow(flow_id),
            (
                update.status.value,
                repr(update.updated_at),
                dumps(update.error, "the flow error"),
                dumps(update.final_output, "the final output"),
                update.event_seq,
                "1" if terminal else "0",
                self._ttl_ms if terminal else 0,
                "" if update.epoch is None else update.epoch,
                "1" if update.release_lease else "",
                *(_event_json(event) for event in update.events),
            ),
        )
        if reply[0] != 1:
            raise self._refusal(flow_id, reply, epoch=update.epoch)
        digest = reply[1]
        await client.command("ZADD", self._keys.flows, "XX", update.updated_at, str(flow_id))
        if terminal and self._ttl_ms and digest:
            expires = str(int(time.time() * 1000) + self._ttl_ms)
            await self._ref_graph(client, text(digest), "", str(flow_id), expires)

    @_redis_errors
    async def move_flow(self, flow_id: UUID, move: FlowMove) -> None:
        """`MovesFlows`: point the flow at ``move.graph`` and log the events (see
        `qm_store_redis.moves`); the flow's graph references follow."""
        digest, graph_data = graph_json(move.graph)
        client = self._clients.get()
        fid = str(flow_id)
        # A failed flow's keys may expire (ttl_seconds): its reference expires with them.
        ttl = await client.command("PTTL", self._keys.flow(flow_id)[0])
        score = "inf" if ttl < 0 else str(int(time.time() * 1000) + ttl)
        await self._ref_graph(client, digest, graph_data, fid, score)
        try:
            old = await moves.move(client, self._keys, flow_id, move, digest, self._eval)
        except BaseException:
            current = await client.command("HGET", self._keys.flow(flow_id)[0], "graph")
            if current is None or text(current) != digest:
                await self._ref_graph(client, digest, "", fid, "", remove=True)
            raise
        if old and old != digest:
            await self._ref_graph(client, old, "", fid, "", remove=True)

    @_redis_errors
    async def due_timers(self, now: float, limit: int) -> list[UUID]:
        """`FindsDueTimers`: paused flows whose timer is due at ``now`` (the timer
        index, checked against each flow; see `qm_store_redis.timers`)."""
        return await timers.due(self._clients.get(), self._keys, now, limit, self._eval)

    @_redis_errors
    async def add_schedule(self, schedule: Schedule) -> None:
        """`KeepsSchedules`: store the schedule; `ScheduleExistsError` if its name is taken."""
        await schedules.add(self._clients.get(), self._keys.schedules, schedule)

    @_redis_errors
    async def list_schedules(self) -> list[Schedule]:
        """Every schedule, by name."""
        return await schedules.list_all(self._clients.get(), self._keys.schedules)

    @_redis_errors
    async def remove_schedule(self, name: str) -> bool:
        """Remove the schedule; True if it existed."""
        return await schedules.remove(self._clients.get(), self._keys.schedules, name)

    @_redis_errors
    async def claim_tick(self, name: str, tick: float, next_tick: float) -> bool:
        """Move the schedule's next tick from ``tick`` to ``next_tick`` (a script);
        True if this call moved it."""
        client = self._clients.get()
        key = self._keys.schedules
        return await schedules.claim(client, key, name, tick, next_tick, self._eval)

    async def commit(self, flow_id: UUID, commit: Commit) -> None:
        """Apply one activation's outcome: one Lua script, all or nothing, with its
        usage counts and the slots it gives up (COMMIT_COUNTED). On Redis Cluster,
        where the counts' keys live in other slots than the flow's, the counts follow
        the accepted commit (one script per count; a crash between loses them:
        docs/limits.md), and so do the slots' releases."""
        items = _commit_args(commit)
        client = self._clients.get()
        counted = bool(commit.key_usage or commit.key_tokens or commit.release_slots)
        after = counted and not await self._spans_tags(client)
        extra: Sequence[str] = ()
        script, sha_header, eval_header = scripts.COMMIT, _EVALSHA_COMMIT, _EVAL_COMMIT
        if counted and not after:
            prefix = self._keys.prefix
            extra, counts = slots.commit_counts(
                prefix, commit.key_usage, commit.key_tokens, commit.release_slots
            )
            items += counts
            script = scripts.COMMIT_COUNTED
            sha_header = pack_items(("EVALSHA", script.sha, COMMIT_KEYS + len(extra)))
            eval_header = pack_items(("EVAL", script.source, COMMIT_KEYS + len(extra)))
        try:
            if type(client) is LoopClient:
                args = pack_items(items)
                count = 3 + COMMIT_KEYS + len(extra) + len(items)
                keys = self._keys.commit_keys(flow_id)
                if extra:
                    keys += pack_items(extra)
                try:
                    applied = await client.send(pack_command(count, sha_header, keys, args))
                except NoScriptError:
                    applied = await client.send(pack_command(count, eval_header, keys, args))
            else:
                flow_keys = (*self._keys.commit_tuple(flow_id), *extra)
                applied = await self._eval(client, script, flow_keys, items)
        except _REDIS_ERRORS as exc:
            raise self._error(exc) from exc
        if applied[0] != 1:
            raise self._refusal(flow_id, applied, commit)
        if after:
            for u in commit.key_usage:
                await self.add_key_usage(u.key, u.node_runs, u.tokens, u.cost)
            for t in commit.key_tokens:
                await self.add_tokens(t.key, t.tokens, t.at, t.per)
            for key, holder in commit.release_slots:
                await self.release_slot(key, holder)

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

    @_redis_errors
    async def acquire_lease(
        self, flow_id: UUID, owner: str, ttl: float, *, take_over: int | None = None
    ) -> Lease:
        reply = await self._eval(
            self._clients.get(),
            scripts.ACQUIRE_LEASE,
            (self._keys.flow(flow_id)[0],),
            (owner, repr(time.time()), repr(ttl), "" if take_over is None else take_over),
        )
        if reply[0] != 1:
            raise self._refusal(flow_id, reply)
        return Lease(owner, int(reply[1]), float(reply[2]))

    @_redis_errors
    async def renew_lease(self, flow_id: UUID, epoch: int, ttl: float) -> Lease:
        expires = time.time() + ttl
        reply = await self._eval(
            self._clients.get(),
            scripts.RENEW_LEASE,
            (self._keys.flow(flow_id)[0],),
            (epoch, repr(expires)),
        )
        if reply[0] != 1:
            raise self._refusal(flow_id, reply, epoch=epoch)
        return Lease("", epoch, expires)

    @_redis_errors
    async def release_lease(self, flow_id: UUID, epoch: int) -> None:
        await self._eval(
            self._clients.get(), scripts.RELEASE_LEASE, (self._keys.flow(flow_id)[0],), (epoch,)
        )

    @_redis_errors
    async def read_events(
        self, flow_id: UUID, after: int = 0, limit: int | None = None
    ) -> list[FlowEvent]:
        """The logged events numbered above ``after``: the log holds event ``n`` at
        index ``n - 1`` (numbers count from 1 without gaps)."""
        stop = -1 if limit is None else after + limit - 1
        rows = await self._clients.get().command("LRANGE", self._keys.flow(flow_id)[8], after, stop)
        events = [event_from_dict(loads(row)) for row in rows]
        return [e for e in events if e.seq > after]

    @_redis_errors
    async def load_flow(self, flow_id: UUID, *, records_after: int = 0) -> FlowSnapshot | None:
        client = self._clients.get()
        # One script over one slot: a consistent snapshot, also on Cluster.
        keys = self._keys.flow(flow_id)[:7]
        flat, memory, records, queued, slots, exits, count = await self._eval(
            client, scripts.LOAD_FLOW, keys, (records_after,)
        )
        fields = as_dict(flat)
        if not fields:
            return None
        graph = await self._graph(client, text(fields[b"graph"]), flow_id)
        ordered = sorted((v.split(b"\t", 1) for v in queued), key=lambda p: int(p[0]))
        deliveries: list[Delivery] = []
        for field, value in as_dict(slots).items():
            deliveries.extend(parse_slot(field, value))
        deliveries.sort(key=lambda d: d.slot)
        loop_exits = []
        for member in exits:
            header, _, edge = text(member).partition(" ")
            loop_exits.append((UUID(header), UUID(edge)))
        return FlowSnapshot(
            flow=flow_record(fields, flow_id, graph),
            memory={text(k): loads(v) for k, v in as_dict(memory).items()},
            records=[NodeExecution.from_dict(loads(r)) for r in records],
            pending=[Activation.from_dict(loads(p[1])) for p in ordered],
            deliveries=deliveries,
            loop_exits=sorted(loop_exits, key=str),
            record_count=int(count),
        )

    @_redis_errors
    async def read_changes(
        self, flow_id: UUID, after: int, *, records_after: int = 0
    ) -> FlowChanges | None:
        """What changed since version ``after`` (the `ReadsChanges` ability): one
        script over the flow's slot."""
        client = self._clients.get()
        keys = self._keys.flow(flow_id)
        reply = await self._eval(
            client, scripts.READ_CHANGES, (keys[0], keys[2], keys[9]), (after, records_after)
        )
        if not reply:
            return None
        flat, records, count, entries = reply
        fields = as_dict(flat)
        flow = flow_record(
            fields, flow_id, await self._graph(client, text(fields[b"graph"]), flow_id)
        )
        kept = []
        for entry in entries:
            version, _, data = entry.partition(b"\t")
            kept.append((int(version), change_from_dict(loads(data))))
        return FlowChanges(
            flow=flow,
            records=[NodeExecution.from_dict(loads(r)) for r in records],
            record_count=int(count),
            commits=changes_after(kept, after, flow.version),
        )

    async def _flow_fields(
        self, client: Client, ids: list[bytes], fields: tuple[str, ...]
    ) -> list[list[bytes | None]]:
        return await client.batch(
            [("HMGET", self._keys.flow(UUID(text(fid)))[0], *fields) for fid in ids]
        )

    async def _drop_dangling(self, client: Client, entries: list[tuple[bytes, float]]) -> None:
        """Remove index entries whose flow is gone (expired by TTL, or a crash
        between indexing and creating), once they are old enough."""
        limit = time.time() - _DANGLING_GRACE
        old = [fid for fid, score in entries if score < limit]
        if old:
            await client.command("ZREM", self._keys.flows, *old)

    @_redis_errors
    async def list_flows(
        self, *, status: FlowStatus | None = None, limit: int | None = None
    ) -> list[FlowRecord]:
        """Flows, most recently updated first. Reads the metadata of every indexed
        flow: meant for operators and cleanup, not for a hot path."""
        client = self._clients.get()
        entries = _pairs(await client.command("ZRANGE", self._keys.flows, 0, -1, "WITHSCORES"))
        ids = [fid for fid, _ in entries]
        replies = await client.batch(
            [("HGETALL", self._keys.flow(UUID(text(fid)))[0]) for fid in ids]
        )
        metas = [as_dict(reply) for reply in replies]
        found: list[tuple[UUID, dict[bytes, bytes]]] = []
        dangling: list[tuple[bytes, float]] = []
        for (fid, score), fields in zip(entries, metas):
            if not fields:
                dangling.append((fid, score))
            elif status is None or text(fields[b"status"]) == status.value:
                found.append((UUID(text(fid)), fields))
        await self._drop_dangling(client, dangling)
        found.sort(key=lambda item: float(item[1][b"updated_at"]), reverse=True)
        if limit is not None:
            found = found[:limit]
        out = []
        for flow_id, fields in found:
            graph = await self._graph(client, text(fields[b"graph"]), flow_id)
            out.append(flow_record(fields, flow_id, graph))
        return out

    @_redis_errors
    async def delete_flow(self, flow_id: UUID) -> bool:
        client = self._clients.get()
        deleted, digest = await self._eval(
            client, scripts.DELETE_FLOW, self._keys.flow(flow_id), ()
        )
        if digest:
            await self._ref_graph(client, text(digest), "", str(flow_id), "", remove=True)
        await client.command("ZREM", self._keys.flows, str(flow_id))
        return bool(deleted)

    @_redis_errors
    async def prune(self, older_than: timedelta) -> int:
        """Delete ended flows last updated before ``now - older_than``. An index
        score is never above its flow's real ``updated_at``, so candidates come
        from a range query on the index and are checked against the flow."""
        client = self._clients.get()
        cutoff = time.time() - older_than.total_seconds()
        entries = _pairs(
            await client.command(
                "ZRANGEBYSCORE", self._keys.flows, "-inf", f"({cutoff!r}", "WITHSCORES"
            )
        )
        metas = await self._flow_fields(client, [f for f, _ in entries], ("status", "updated_at"))
        count = 0
        dangling: list[tuple[bytes, float]] = []
        for (fid, score), (status, updated) in zip(entries, metas):
            if status is None or updated is None:
                dangling.append((fid, score))
            elif FlowStatus(text(status)).is_terminal and float(updated) < cutoff:
                count += await self.delete_flow(UUID(text(fid)))
        await self._drop_dangling(client, dangling)
        return count


def _pairs(flat: list[bytes]) -> list[tuple[bytes, float]]:
    """(member, score) pairs of a flat ``WITHSCORES`` reply."""
    return [(flat[i], float(flat[i + 1])) for i in range(0, len(flat), 2)]


def _event_json(event: FlowEvent) -> bytes:
    return dumps(event.to_dict(), f"event {event.type}")


def _commit_args(commit: Commit) -> list[Any]:
    """The COMMIT script's ARGV (see scripts.COMMIT)."""
    done = commit.done
    rec = commit.record
    args: list[Any] = [
        time.time(),
        "" if commit.epoch is None else commit.epoch,
        "" if done is None else activation_field(done),
        "" if done is None or rec is None else rec.attempt,
        "" if commit.answers is None else activation_field(commit.answers),
    ]
    if rec is None:
        args += ("", "")
    else:
        args += (dumps(rec.to_dict(), f"the record of node {rec.node_id}"), str(rec.node_id))
    memory = commit.memory
    if memory:
        args.append(len(memory))
        for key, value in memory.items():
            args += (key, dumps(value, f"memory value {key!r}"))
    else:
        args.append(0)
    args.append(len(commit.deliveries))
    for delivery in commit.deliveries:
        args += (
            slot_field(delivery.target, delivery.slot),
            str(delivery.edge),
            delivery_line(delivery),
        )
    args.append(len(commit.closed))
    for target, slot in commit.closed:
        args.append(slot_field(target, slot))
    args.append(len(commit.enqueue))
    if commit.enqueue:
        # Queue order survives a reload: values sort by commit time, then position.
        order = time.time_ns()
        for act in commit.enqueue:
            order += 1
            data = dumps(act.to_dict(), f"activation {act!r}")
            args += (activation_field(act.key), b"%d\t%b" % (order, data))
    args.append(len(commit.loop_resets))
    args.extend(str(header) for header in commit.loop_resets)
    args.append(len(commit.loop_exits))
    args.extend(f"{header} {edge}" for header, edge in commit.loop_exits)
    args.append(len(commit.events))
    for event in commit.events:
        args += (event.seq, _event_json(event))
    if commit.keep_change:
        args += (dumps(change_to_dict(commit), "the commit's change"), KEPT_CHANGES)
    else:
        args.append("")
    return args
