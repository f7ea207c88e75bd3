"""`SQLiteStore`: the whole store contract (0.1.5's methods and `DurableStore`) in one
SQLite file, shared safely by several processes.

Each method encodes its arguments on the caller's thread, then runs one
function of `queries` in one transaction (see `connection` for where).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from qm_store_sqlite import codec, queries, slots
from qm_store_sqlite.connection import Database, check_path, in_read_tx, in_write_tx
from qm_store_sqlite.errors import SQLiteDataError
from qm_store_sqlite.graphs import GraphCache
from qm_store_sqlite.moves import SQLiteMoves
from qm_store_sqlite.persistent import SQLitePersistentMemory
from qm_store_sqlite.schedules import SQLiteSchedules
from qm_store_sqlite.settings import DEFAULT_BUSY_TIMEOUT, SQLiteSettings
from quartermaster_engine.context.node_execution import NodeExecution
from quartermaster_engine.events import FlowEvent
from quartermaster_engine.stores.changes import FlowChanges, change_to_dict
from quartermaster_engine.stores.records import (
    Commit,
    FlowRecord,
    FlowSnapshot,
    FlowStatus,
    FlowUpdate,
    Lease,
    WindowAsk,
)
from quartermaster_engine.types import Message

#: Commits refresh a running flow's ``updated_at`` when it is older than this
#: (seconds): touching the flow row rewrites two index pages, which on every
#: commit would double what a node's commit writes.
TOUCH_INTERVAL = 1.0
_TOUCHED_MAX = 10_000


class SQLiteStore(SQLiteSchedules, SQLiteMoves):
    """A durable store in one SQLite file (WAL mode), for one machine and any number
    of processes sharing the file.

    ``path`` is the database file (created on first use; its folder must exist).
    ``synchronous`` is SQLite's ``PRAGMA synchronous`` (OFF, NORMAL, FULL, EXTRA),
    ``busy_timeout`` how many seconds a write (or opening the file) waits for
    another connection's lock, and ``retention`` how long ended flows are kept before ``qm
    flows prune`` deletes them (None: until pruned by age).

    Every method is ``async def``; the engine awaits them from any event loop
    and thread. The path is checked when the store is made (`StoreOpenError`);
    the file is opened (schema checked, created or migrated) on first use, or by
    `open`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "NORMAL",
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        retention: timedelta | str | float | None = None,
    ) -> None:
        settings = SQLiteSettings.model_validate(
            {
                "path": path,
                "synchronous": synchronous,
                "busy_timeout": busy_timeout,
                "retention": retention,
            }
        )
        self._init(settings)

    @classmethod
    def from_settings(cls, settings: SQLiteSettings) -> SQLiteStore:
        """The store a validated ``[store]`` section describes."""
        store = cls.__new__(cls)
        store._init(settings)
        return store

    def _init(self, settings: SQLiteSettings) -> None:
        self.path: Path = settings.path.absolute()
        self.synchronous: str = settings.synchronous
        self.busy_timeout: float = settings.busy_timeout
        #: How long ended flows are kept; ``qm flows prune`` without an age uses it.
        self.retention: timedelta | None = settings.retention
        check_path(self.path)
        self._db = Database(self.path, self.synchronous, self.busy_timeout)
        self._graphs = GraphCache(self.path)
        # Orders the queue: increasing within this process, and a later process
        # starts later (the clock in ns), after what earlier ones queued.
        self._queue_order = itertools.count(time.time_ns())
        # When this store last refreshed each running flow's updated_at.
        self._touched: dict[bytes, float] = {}
        self._persistent: SQLitePersistentMemory | None = None

    def describe(self) -> str:
        """``sqlite <absolute path>``, for messages that name the store."""
        return f"sqlite {self.path}"

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    async def open(self) -> None:
        """Open the file now rather than on first use: raises `StoreOpenError` or
        `SchemaVersionError` if it cannot be used."""
        await self._db.open()

    async def close(self) -> None:
        """Release the connections; safe to call twice. A later use reopens them."""
        await self._db.close()

    def persistent_memory(self) -> SQLitePersistentMemory:
        """Per-agent persistent memory kept in this file (survives processes)."""
        if self._persistent is None:
            self._persistent = SQLitePersistentMemory(self._db)
        return self._persistent

    # -- slots, windows, waiters (`HoldsSlots`, `LimitsRate`, `LimitsTokens`, `CountsWaiters`)

    async def take_slot(
        self, key: str, holder: str, limit: int, now: float, expires_at: float
    ) -> int:
        """Take a slot of ``key`` in first-come order: 0, else the holder's place in
        the key's line (`HoldsSlots.take_slot`)."""
        return await self._db.write(slots.take_slot, key, holder, limit, now, expires_at)

    async def renew_slot(self, key: str, holder: str, expires_at: float) -> bool:
        """Move the holder's slot's expiry; False if it lapsed."""
        return await self._db.write(slots.renew, key, holder, expires_at)

    async def release_slot(self, key: str, holder: str) -> None:
        """Give the holder's slot up."""
        await self._db.write(slots.release, key, holder)

    def releases_slots_in_commit(self) -> bool:
        """Its commits give up `Commit.release_slots` in their transaction
        (`ReleasesSlotsInCommit`)."""
        return True

    async def slots_in_use(self, now: float) -> dict[str, int]:
        """Unexpired slots per key, of every process using the file."""
        return await self._db.run(slots.in_use, now)

    async def add_tokens(self, key: str, tokens: int, now: float, per: float) -> None:
        """Count ``tokens`` used by ``key`` at ``now`` (`LimitsTokens`)."""
        await self._db.write(slots.add_tokens, key, tokens, now, per)

    async def tokens_in_window(self, key: str, per: float, now: float) -> list[tuple[float, int]]:
        """``key``'s token counts in the ``per`` seconds before ``now``, oldest first."""
        return await self._db.run(slots.tokens_in_window, key, per, now)

    async def add_key_usage(self, key: str, node_runs: int, tokens: int, cost: float) -> None:
        """Add to ``key``'s usage across flows (`KeepsKeyUsage`)."""
        await self._db.write(slots.add_key_usage, key, node_runs, tokens, cost)

    async def keys_usage(self, keys: Sequence[str]) -> list[tuple[int, int, float]]:
        """``(node_runs, tokens, cost)`` of each of ``keys``: one query."""
        return await self._db.run(slots.keys_usage, list(keys))

    async def key_usages(self) -> dict[str, tuple[int, int, float]]:
        """The usage of every budget key with some."""
        return await self._db.run(slots.key_usages)

    async def mark_waiting(self, key: str, waiter: str, now: float, expires_at: float) -> None:
        """Record ``waiter`` as waiting for ``key`` until ``expires_at`` (`CountsWaiters`)."""
        await self._db.write(slots.mark_waiting, key, waiter, now, expires_at)

    async def unmark_waiting(self, key: str, waiter: str) -> None:
        """The waiter waits no more."""
        await self._db.write(slots.unmark_waiting, key, waiter)

    async def waiting_counts(self, now: float) -> dict[str, int]:
        """Unexpired waiters per key, of every process using the file."""
        return await self._db.run(slots.waiting_counts, now)

    async def take_request(self, key: str, limit: int, per: float, now: float) -> float:
        """Count a start of ``key`` if its window has room (0.0), else the seconds to wait."""
        return await self._db.write(slots.take_request, key, limit, per, now)

    async def take_request_in_line(self, ask: WindowAsk) -> tuple[int, float]:
        """`take_request` in its line's order (`KeepsWindowLines`): one transaction."""
        return await self._db.write(slots.take_request_in_line, ask)

    async def take_tokens_in_line(self, ask: WindowAsk, leave: bool) -> tuple[int, float]:
        """Room for tokens in the line's order (`KeepsWindowLines`): one transaction."""
        return await self._db.write(slots.take_tokens_in_line, ask, leave)

    async def requests_in_window(self, key: str, per: float, now: float) -> int:
        """Starts of ``key`` in the ``per`` seconds before ``now``, of every process."""
        return await self._db.run(slots.requests_in_window, key, per, now)

    # -- flow records ----------------------------------------------------------------------

    async def create_flow(self, record: FlowRecord) -> None:
        """Store a new flow; `FlowExistsError` if the id is taken."""
        digest, spec = self._graphs.row(record.graph)
        row = (
            record.flow_id.bytes,
            digest,
            record.input,
            record.status.value,
            record.created_at,
            record.updated_at,
            record.error,
            record.final_output,
            record.event_seq,
            None if record.parent_flow_id is None else record.parent_flow_id.bytes,
            record.version,
            record.lease_owner,
            record.lease_epoch,
            record.lease_expires,
        )
        await self._db.write(queries.create_flow, row, spec)

    async def get_flow(self, flow_id: UUID) -> FlowRecord | None:
        """The flow's record, or None."""
        return await self._db.run(queries.get_flow, self._graphs, flow_id.bytes)

    async def update_flow(self, flow_id: UUID, update: FlowUpdate) -> None:
        """Change the flow's status; a terminal status also drops its queue and joins."""
        fid = flow_id.bytes
        row = (
            update.status.value,
            update.updated_at,
            update.error,
            update.final_output,
            update.event_seq,
            fid,
        )
        self._touched.pop(fid, None)
        events = self._event_rows(flow_id, update.events)
        await self._db.write(
            queries.update_flow,
            row,
            update.status.is_terminal,
            update.epoch,
            update.release_lease,
            events,
        )

    def _event_rows(self, flow_id: UUID, events: Sequence[FlowEvent]) -> list[tuple[Any, ...]]:
        fid = flow_id.bytes
        dumps = codec.dumps
        return [(fid, event.seq, dumps(event.to_dict())) for event in events]

    async def acquire_lease(
        self, flow_id: UUID, owner: str, ttl: float, *, take_over: int | None = None
    ) -> Lease:
        """Make ``owner`` the flow's driver (see `DurableStore.acquire_lease`)."""
        return await self._db.write(queries.acquire_lease, flow_id.bytes, owner, ttl, take_over)

    async def renew_lease(self, flow_id: UUID, epoch: int, ttl: float) -> Lease:
        """Extend the lease of ``epoch``; `StaleLeaseError` if it is no longer current."""
        return await self._db.write(queries.renew_lease, flow_id.bytes, epoch, ttl)

    async def release_lease(self, flow_id: UUID, epoch: int) -> None:
        """End the lease of ``epoch`` if it is still current."""
        await self._db.write(queries.release_lease, flow_id.bytes, epoch)

    async def read_events(
        self, flow_id: UUID, after: int = 0, limit: int | None = None
    ) -> list[FlowEvent]:
        """The flow's logged events numbered above ``after``, in order."""
        return await self._db.run(queries.read_events, flow_id.bytes, after, limit)

    async def list_flows(
        self, *, status: FlowStatus | None = None, limit: int | None = None
    ) -> list[FlowRecord]:
        """Flow records, most recently updated first."""
        value = None if status is None else status.value
        return await self._db.run(queries.list_flows, self._graphs, value, limit)

    async def due_timers(self, now: float, limit: int) -> list[UUID]:
        """`FindsDueTimers`: paused flows whose timer is due at ``now``, earliest first."""
        return await self._db.run(queries.due_timers, now, limit)

    async def record_counts(self, flow_ids: list[UUID]) -> dict[UUID, dict[str, int]]:
        """How many nodes of every flow are in each status, by their latest record
        (``qm flows list``'s node counts), counted in SQL rather than by loading the
        flows."""
        fids = [f.bytes for f in flow_ids]
        return await self._db.run(in_read_tx, queries.record_counts, fids)

    async def delete_flow(self, flow_id: UUID) -> bool:
        """Remove the flow and everything stored for it; True if anything was stored."""
        removed: int = await self._db.run(in_write_tx, queries.delete_flows, [flow_id.bytes])
        return removed > 0

    async def clear_flow(self, flow_id: UUID) -> None:
        """Remove everything stored for the flow (0.1.5's name for `delete_flow`)."""
        await self.delete_flow(flow_id)

    async def prune(self, older_than: timedelta | None = None) -> int:
        """Delete ended flows last updated longer ago than ``older_than`` (default:
        `retention`); return how many. Paused and running flows are kept."""
        age = older_than if older_than is not None else self.retention
        if age is None:
            raise ValueError(f"prune() needs an age: the store {self.path} has no retention")
        return await self._db.run(queries.prune, time.time() - age.total_seconds())

    # -- commits ----------------------------------------------------------------------------

    async def commit(self, flow_id: UUID, commit: Commit) -> None:
        """Apply one activation's outcome in one write transaction, with its usage
        counts (`Commit.key_usage`, `Commit.key_tokens`) and the slots it gives up
        (`Commit.release_slots`)."""
        rows = self._commit_rows(flow_id, commit)
        try:
            if commit.key_usage or commit.key_tokens or commit.release_slots:  # same transaction
                await self._db.write(_apply_counted, rows, commit)
            else:
                await self._db.write(queries.apply_commit, rows)
        except (UnicodeEncodeError, OverflowError) as exc:
            # Raised by sqlite3 while binding a value, inside the transaction it rolled back.
            raise SQLiteDataError(
                f"cannot store the outcome of {_describe(commit)} of flow {flow_id} in "
                f"{self.path}: {exc} (text must be valid Unicode, numbers fit in 64 bits)"
            ) from None

    def _commit_rows(self, flow_id: UUID, commit: Commit) -> queries.CommitRows:
        fid = flow_id.bytes
        rows = queries.CommitRows(fid)
        now = time.time()
        touched = self._touched
        if now - touched.get(fid, 0.0) >= TOUCH_INTERVAL:
            if len(touched) >= _TOUCHED_MAX:
                touched.clear()
            touched[fid] = rows.touch = now
        rows.epoch = commit.epoch
        done = commit.done
        if done is not None:
            rows.done = (fid, done[0].bytes, done[1])
            if commit.record is not None:
                rows.attempt = commit.record.attempt
        if commit.answers is not None:
            rows.answers = (fid, commit.answers[0].bytes, commit.answers[1])
        try:
            if commit.record is not None:
                rows.record = codec.encode_record(commit.record)
            if commit.memory:
                dumps = codec.dumps
                rows.memory = [(fid, key, dumps(value)) for key, value in commit.memory.items()]
            if commit.enqueue:
                order = self._queue_order
                encode = codec.encode_activation
                rows.pending = [encode(fid, act, next(order)) for act in commit.enqueue]
            if commit.events:
                rows.events = self._event_rows(flow_id, commit.events)
            if commit.keep_change:
                rows.change = codec.dumps(change_to_dict(commit))
        except (TypeError, ValueError) as exc:
            raise SQLiteDataError(
                f"cannot store the outcome of {_describe(commit)} of flow {flow_id} in "
                f"{self.path}: {exc} (flow memory and node output data must be JSON values)"
            ) from None
        if commit.deliveries:
            rows.deliveries = [codec.encode_delivery(fid, d) for d in commit.deliveries]
        if commit.closed:
            rows.closed = [(fid, target.bytes, slot) for target, slot in commit.closed]
        if commit.loop_resets:
            rows.resets = [(fid, header.bytes) for header in commit.loop_resets]
        if commit.loop_exits:
            rows.exits = [(fid, header.bytes, edge.bytes) for header, edge in commit.loop_exits]
        return rows

    async def load_flow(self, flow_id: UUID, *, records_after: int = 0) -> FlowSnapshot | None:
        """Everything needed to continue the flow, read from one snapshot (its records
        numbered above ``records_after``)."""
        return await self._db.run(
            in_read_tx, queries.load_flow, self._graphs, flow_id.bytes, records_after
        )

    async def read_changes(
        self, flow_id: UUID, after: int, *, records_after: int = 0
    ) -> FlowChanges | None:
        """What changed since version ``after`` (the `ReadsChanges` ability), read
        from one snapshot."""
        return await self._db.run(
            in_read_tx, queries.read_changes, self._graphs, flow_id.bytes, after, records_after
        )

    # -- 0.1.5 contract ----------------------------------------------------------------------

    async def save_node_execution(
        self, flow_id: UUID, node_id: UUID, execution: NodeExecution
    ) -> None:
        """Append a record of the node (its latest from now on)."""
        row = (node_id.bytes, *codec.encode_record(execution)[1:])
        await self._db.write(queries.save_record, flow_id.bytes, row)

    async def get_node_execution(self, flow_id: UUID, node_id: UUID) -> NodeExecution | None:
        """The node's latest record, or None."""
        return await self._db.run(queries.latest_record, flow_id.bytes, node_id.bytes)

    async def get_all_node_executions(self, flow_id: UUID) -> dict[UUID, NodeExecution]:
        """``{node_id: latest record}`` for the flow."""
        return await self._db.run(queries.latest_records, flow_id.bytes)

    async def save_memory(self, flow_id: UUID, key: str, value: Any) -> None:
        """Set a flow-memory value (a JSON value)."""
        try:
            encoded = codec.dumps(value)
        except (TypeError, ValueError) as exc:
            raise SQLiteDataError(
                f"cannot store flow memory {key!r} of flow {flow_id} in {self.path}: {exc}"
            ) from None
        await self._db.write(queries.set_memory, flow_id.bytes, key, encoded)

    async def get_memory(self, flow_id: UUID, key: str) -> Any:
        """A flow-memory value, or None."""
        return await self._db.run(queries.get_memory, flow_id.bytes, key)

    async def get_all_memory(self, flow_id: UUID) -> dict[str, Any]:
        """The flow's memory as a new dict."""
        return await self._db.run(queries.all_memory, flow_id.bytes)

    async def delete_memory(self, flow_id: UUID, key: str) -> None:
        """Remove a flow-memory value (no error when absent)."""
        await self._db.write(queries.delete_memory, flow_id.bytes, key)

    async def save_messages(self, flow_id: UUID, node_id: UUID, messages: list[Message]) -> None:
        """Replace the node's message history."""
        body = codec.encode_messages(messages)
        await self._db.write(queries.save_messages, flow_id.bytes, node_id.bytes, body)

    async def get_messages(self, flow_id: UUID, node_id: UUID) -> list[Message]:
        """The node's history: saved explicitly, else the one its latest record ends."""
        return await self._db.run(in_read_tx, queries.messages_of, flow_id.bytes, node_id.bytes)

    async def append_message(self, flow_id: UUID, node_id: UUID, message: Message) -> None:
        """Append one message to the node's history."""
        body = codec.encode_messages([message])
        await self._db.write(queries.append_message, flow_id.bytes, node_id.bytes, body)


def _apply_counted(db: Any, rows: queries.CommitRows, commit: Commit) -> None:
    """A commit with its usage counts (`KeepsKeyUsage`, `LimitsTokens`) and the slots
    it gives up (`ReleasesSlotsInCommit`): all or nothing."""
    queries.apply_commit(db, rows)
    slots.add_counts(db, commit.key_usage, commit.key_tokens)
    for key, holder in commit.release_slots:
        slots.release(db, key, holder)


def _describe(commit: Commit) -> str:
    key = (commit.record.node_id, commit.record.visit) if commit.record else commit.done
    return "a commit" if key is None else f"node {key[0]} (visit {key[1]})"
