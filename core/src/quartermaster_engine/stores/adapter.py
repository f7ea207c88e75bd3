"""`StoreAdapter`: any store behind the typed `StoreFace`, wrapped once at the edge."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar, cast
from uuid import UUID

from quartermaster_engine.context.node_execution import NodeExecution
from quartermaster_engine.events import FlowEvent
from quartermaster_engine.stores.base import (
    Closeable,
    CountsRecords,
    DescribesItself,
    DurableStore,
    ExecutionStore,
    FindsDueTimers,
    MovesFlows,
    ReadsChanges,
)
from quartermaster_engine.stores.changes import FlowChanges
from quartermaster_engine.stores.face import StoreFace
from quartermaster_engine.stores.records import (
    Commit,
    FlowMove,
    FlowRecord,
    FlowSnapshot,
    FlowStatus,
    FlowUpdate,
    Lease,
)
from quartermaster_engine.types import Message

T = TypeVar("T")


async def _done(result: Awaitable[T] | T) -> T:
    """``result``, awaited when the store's method was ``async def``."""
    if inspect.isawaitable(result):
        return cast("T", await result)
    return result


class StoreAdapter(StoreFace):
    """Implements `StoreFace` over a store written with ``def`` or ``async def`` methods.

    ``durable`` is True when the store implements the whole `DurableStore`
    contract; otherwise the engine falls back to 0.1.5's per-node methods.
    Optional abilities are declared protocols checked once here
    (`DescribesItself`, `CountsRecords`, `Closeable`).
    """

    __slots__ = (
        "_commit",
        "_commit_async",
        "_describes",
        "_durable",
        "_store",
        "durable",
        "finds_due_timers",
        "reads_changes",
        "store",
    )

    def __init__(self, store: ExecutionStore) -> None:
        self.store = store
        self._store = store
        self.durable = isinstance(store, DurableStore)
        self._durable: DurableStore | None = store if isinstance(store, DurableStore) else None
        self._commit_async = self._durable is not None and inspect.iscoroutinefunction(
            self._durable.commit
        )
        # Protocol checks cost microseconds: made once, not per flow or activation.
        self._describes = isinstance(store, DescribesItself)
        #: The store finds flows parked on a timer again (`FindsDueTimers`).
        self.finds_due_timers = isinstance(store, FindsDueTimers)
        #: The store says what changed since a version (`ReadsChanges`).
        self.reads_changes = isinstance(store, ReadsChanges)
        # Bound once: the commit is the one store call of every activation.
        self._commit: Callable[[UUID, Commit], Any] | None = (
            None if self._durable is None else self._durable.commit
        )

    @property
    def _flows(self) -> DurableStore:
        if self._durable is None:
            raise self._not_durable()
        return self._durable

    def _not_durable(self) -> TypeError:
        return TypeError(f"{self.describe()} keeps no flow records (not a DurableStore)")

    def describe(self) -> str:
        store = self._store
        return cast(DescribesItself, store).describe() if self._describes else type(store).__name__

    async def create_flow(self, record: FlowRecord) -> None:
        await _done(self._flows.create_flow(record))

    async def get_flow(self, flow_id: UUID) -> FlowRecord | None:
        record: FlowRecord | None = await _done(self._flows.get_flow(flow_id))
        return record

    async def update_flow(self, flow_id: UUID, update: FlowUpdate) -> None:
        await _done(self._flows.update_flow(flow_id, update))

    async def commit(self, flow_id: UUID, commit: Commit) -> None:
        """The hot path: one call per activation, no reflection."""
        if self._commit is None:
            raise self._not_durable()
        if self._commit_async:
            await self._commit(flow_id, commit)
        else:
            self._commit(flow_id, commit)

    @property
    def commit_is_sync(self) -> bool:
        """True when ``commit`` never suspends, so callers may skip the await."""
        return self._durable is not None and not self._commit_async

    def commit_now(self, flow_id: UUID, commit: Commit) -> None:
        """Synchronous commit; only when `commit_is_sync`."""
        if self._commit is None:
            raise self._not_durable()
        self._commit(flow_id, commit)

    async def acquire_lease(
        self, flow_id: UUID, owner: str, ttl: float, *, take_over: int | None = None
    ) -> Lease:
        lease: Lease = await _done(
            self._flows.acquire_lease(flow_id, owner, ttl, take_over=take_over)
        )
        return lease

    async def renew_lease(self, flow_id: UUID, epoch: int, ttl: float) -> Lease:
        lease: Lease = await _done(self._flows.renew_lease(flow_id, epoch, ttl))
        return lease

    async def release_lease(self, flow_id: UUID, epoch: int) -> None:
        await _done(self._flows.release_lease(flow_id, epoch))

    async def read_events(
        self, flow_id: UUID, after: int = 0, limit: int | None = None
    ) -> list[FlowEvent]:
        events: list[FlowEvent] = await _done(self._flows.read_events(flow_id, after, limit))
        return events

    async def load_flow(self, flow_id: UUID, *, records_after: int = 0) -> FlowSnapshot | None:
        snapshot: FlowSnapshot | None = await _done(
            self._flows.load_flow(flow_id, records_after=records_after)
        )
        return snapshot

    async def read_changes(
        self, flow_id: UUID, after: int, *, records_after: int = 0
    ) -> FlowChanges | None:
        """`ReadsChanges.read_changes`; only when `reads_changes`."""
        store = cast(ReadsChanges, self._store)
        changes: FlowChanges | None = await _done(
            store.read_changes(flow_id, after, records_after=records_after)
        )
        return changes

    async def list_flows(
        self, *, status: FlowStatus | None = None, limit: int | None = None
    ) -> list[FlowRecord]:
        records: list[FlowRecord] = await _done(self._flows.list_flows(status=status, limit=limit))
        return records

    async def delete_flow(self, flow_id: UUID) -> bool:
        return bool(await _done(self._flows.delete_flow(flow_id)))

    async def prune(self, older_than: timedelta) -> int:
        return int(await _done(self._flows.prune(older_than)))

    async def record_counts(self, flow_ids: list[UUID]) -> dict[UUID, dict[str, int]] | None:
        store = self._store
        if not isinstance(store, CountsRecords):
            return None
        counts: dict[UUID, dict[str, int]] = await _done(store.record_counts(flow_ids))
        return counts

    @property
    def moves_flows(self) -> bool:
        """The store can move a flow to another graph (`MovesFlows`)."""
        return isinstance(self._store, MovesFlows)

    async def move_flow(self, flow_id: UUID, move: FlowMove) -> None:
        """`MovesFlows.move_flow`; a `TypeError` naming the store if it cannot."""
        store = self._store
        if not isinstance(store, MovesFlows):
            raise TypeError(f"{self.describe()} cannot move flows to another graph (no move_flow)")
        await _done(store.move_flow(flow_id, move))

    async def save_node_execution(
        self, flow_id: UUID, node_id: UUID, execution: NodeExecution
    ) -> None:
        await _done(self._store.save_node_execution(flow_id, node_id, execution))

    async def save_messages(self, flow_id: UUID, node_id: UUID, messages: list[Message]) -> None:
        await _done(self._store.save_messages(flow_id, node_id, messages))

    async def save_memory(self, flow_id: UUID, key: str, value: Any) -> None:
        await _done(self._store.save_memory(flow_id, key, value))

    async def close(self) -> None:
        store = self._store
        if isinstance(store, Closeable):
            await _done(store.close())
