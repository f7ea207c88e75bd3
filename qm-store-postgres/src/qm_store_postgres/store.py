"""`PostgresStore`: the whole store contract (0.1.5's methods and `DurableStore`) in
PostgreSQL, shared by any number of processes and machines."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg
from asyncpg import exceptions as pgerr

from qm_store_postgres import codec, leases
from qm_store_postgres.database import Database, execute, fetch, fetchval
from qm_store_postgres.live import NOTIFY_SQL, PostgresLiveSubscription, channel_of
from qm_store_postgres.moves import PostgresMoves
from qm_store_postgres.persistent import PostgresPersistentMemory
from qm_store_postgres.queries import FLOW_WIDTH, TERMINAL, Queries
from qm_store_postgres.refusals import refusal
from qm_store_postgres.schedules import PostgresSchedules
from qm_store_postgres.settings import PostgresSettings, check_dsn
from quartermaster_engine.context.node_execution import NodeExecution
from quartermaster_engine.events import FlowEvent
from quartermaster_engine.messaging.history import history_of
from quartermaster_engine.stores.base import FlowExistsError, StoreError
from quartermaster_engine.stores.changes import FlowChanges, change_from_dict, changes_after
from quartermaster_engine.stores.graphs import GraphCache
from quartermaster_engine.stores.records import (
    Activation,
    Commit,
    Delivery,
    FlowRecord,
    FlowSnapshot,
    FlowStatus,
    FlowUpdate,
    Lease,
    WindowAsk,
)
from quartermaster_engine.types import GraphSpec, Message

#: Commits refresh a running flow's ``updated_at`` when it is older than this
#: (seconds): the column is indexed, and changing it on every commit would turn
#: the flow row's cheap in-place (HOT) update into one that writes two indexes.
TOUCH_INTERVAL = 1.0
_TOUCHED_MAX = 10_000


class PostgresStore(PostgresSchedules, PostgresMoves):
    """A durable store in PostgreSQL 12 or later, through asyncpg.

    ``dsn`` is a ``postgresql://`` URL; the store keeps its tables in the schema
    ``schema_name`` (created on first use, versioned, migrated; a newer one is
    refused). Each node commit is one call of a server-side function: one
    statement, one transaction, one round trip. ``pool_size`` connections per
    event loop; ``statement_timeout`` seconds per statement; ``retention`` how
    long ended flows are kept before ``qm flows prune`` deletes them.

    Every method is ``async def``; the store works from any number of event loops
    (one pool per loop). A commit whose connection is lost is never retried: it
    was applied once or not at all, and ``recover`` continues the flow.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema_name: str = "quartermaster",
        pool_size: int = 10,
        statement_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        retention: timedelta | str | float | None = None,
    ) -> None:
        settings = PostgresSettings.model_validate(
            {
                "dsn": check_dsn(dsn),
                "schema_name": schema_name,
                "pool_size": pool_size,
                "statement_timeout": statement_timeout,
                "connect_timeout": connect_timeout,
                "retention": retention,
            }
        )
        self._init(settings)

    @classmethod
    def from_settings(cls, settings: PostgresSettings) -> PostgresStore:
        """The store a validated ``[store]`` section describes."""
        store = cls.__new__(cls)
        store._init(settings)
        return store

    def _init(self, settings: PostgresSettings) -> None:
        self.schema_name: str = settings.schema_name
        #: How long ended flows are kept; ``qm flows prune`` without an age uses it.
        self.retention: timedelta | None = settings.retention
        self._db = Database(settings)
        self._sql = Queries(settings.schema_name)
        self._graphs = GraphCache()
        # Graphs this process knows are stored: their JSON is not sent again.
        self._stored_graphs: set[str] = set()
        # Orders the queue: increasing within this process, and a later process
        # starts later (the clock in ns), after what earlier ones queued.
        self._queue_order = itertools.count(time.time_ns())
        self._touched: dict[UUID, float] = {}
        self._persistent: PostgresPersistentMemory | None = None

    def describe(self) -> str:
        """``postgres <dsn> schema <name>`` (password hidden), for messages."""
        return f"postgres {self._db.describe()}"

    def __repr__(self) -> str:
        return f"PostgresStore({self._db.shown!r}, schema_name={self.schema_name!r})"

    async def open(self) -> None:
        """Connect and check the schema now rather than on first use: raises
        `StoreOpenError`, `SchemaVersionError` or `PostgresUnavailableError`."""
        await self._db.open()

    async def close(self) -> None:
        """Close the pools of every event loop that used the store; safe twice. A
        later call opens new ones."""
        await self._db.close()

    async def publish_live(self, flow_id: UUID, message: bytes) -> None:
        """Notify the flow's channel (the `LiveChannel` ability; see `qm_store_postgres.live`)."""
        await self._db.run(execute, NOTIFY_SQL, channel_of(flow_id), message.decode())

    async def subscribe_live(self, flow_id: UUID) -> PostgresLiveSubscription:
        """``LISTEN`` to the flow's channel on a connection of its own."""
        return await PostgresLiveSubscription.open(await self._db.connect(), flow_id)

    def persistent_memory(self) -> PostgresPersistentMemory:
        """Per-agent persistent memory kept in this database (survives processes)."""
        if self._persistent is None:
            self._persistent = PostgresPersistentMemory(self._db, self._sql)
        return self._persistent

    # -- flow records ----------------------------------------------------------------------

    async def create_flow(self, record: FlowRecord) -> None:
        """Store a new flow; `FlowExistsError` if the id is taken."""
        digest, spec = self._graphs.row(record.graph)
        row = (
            record.flow_id,
            digest,
            record.input,
            record.status.value,
            record.created_at,
            record.updated_at,
            record.error,
            record.final_output,
            record.event_seq,
            record.parent_flow_id,
            record.version,
            record.lease_owner,
            record.lease_epoch,
            record.lease_expires,
        )
        await self._db.run(self._create, row, digest, spec)

    async def _create(
        self, conn: asyncpg.Connection, row: tuple[Any, ...], digest: str, spec: str
    ) -> None:
        sql = self._sql
        for _ in range(2):
            try:
                if digest not in self._stored_graphs:
                    await conn.execute(sql.add_graph, digest, spec)
                    self._stored_graphs.add(digest)
                await conn.execute(sql.add_flow, *row)
                return
            except pgerr.UniqueViolationError:
                raise FlowExistsError(
                    f"flow {row[0]} already exists in {self.describe()}"
                ) from None
            except pgerr.ForeignKeyViolationError:
                # Pruned by another process since we stored it: store it again.
                self._stored_graphs.discard(digest)
        raise StoreError(f"{self.describe()}: graph {digest} of flow {row[0]} vanished twice")

    async def get_flow(self, flow_id: UUID) -> FlowRecord | None:
        """The flow's record, or None."""
        return await self._db.run(self._get_flow, flow_id)

    async def _get_flow(self, conn: asyncpg.Connection, flow_id: UUID) -> FlowRecord | None:
        row = await conn.fetchrow(self._sql.get_flow, flow_id)
        return None if row is None else await self._flow_record(conn, row)

    async def _flow_record(self, conn: asyncpg.Connection, row: Any) -> FlowRecord:
        fid, digest, input_text, status, created, updated, error, output, seq, parent = row[:10]
        version, owner, epoch, expires = row[10:FLOW_WIDTH]
        return FlowRecord(
            flow_id=codec.plain_uuid(fid),
            graph=await self._graph(conn, digest),
            input=input_text,
            status=FlowStatus(status),
            created_at=created,
            updated_at=updated,
            error=error,
            final_output=output,
            event_seq=seq,
            parent_flow_id=None if parent is None else codec.plain_uuid(parent),
            version=version,
            lease_owner=owner,
            lease_epoch=epoch,
            lease_expires=expires,
        )

    async def _graph(self, conn: asyncpg.Connection, digest: str) -> GraphSpec:
        graph = self._graphs.cached(digest)
        if graph is not None:
            return graph
        spec = await conn.fetchval(self._sql.graph, digest)
        if spec is None:
            raise StoreError(f"{self.describe()} has a flow whose graph {digest} is missing")
        self._stored_graphs.add(digest)
        return self._graphs.parse(digest, spec)

    async def update_flow(self, flow_id: UUID, update: FlowUpdate) -> None:
        """Change the flow's status (under the lease of ``update.epoch``, when set) and
        log its events; a terminal status also drops its queue and joins. One
        statement, one transaction."""
        self._touched.pop(flow_id, None)
        refused = await self._db.run(
            fetchval,
            self._sql.update_flow,
            flow_id,
            update.status.value,
            update.updated_at,
            update.error,
            update.final_output,
            update.event_seq,
            update.status.is_terminal,
            update.epoch,
            update.release_lease,
            *codec.event_args(update.events),
        )
        if refused is not None:
            raise refusal(flow_id, refused, self.describe(), epoch=update.epoch)

    async def list_flows(
        self, *, status: FlowStatus | None = None, limit: int | None = None
    ) -> list[FlowRecord]:
        """Flow records, most recently updated first (read through an index)."""
        return await self._db.run(self._list, status, limit)

    async def _list(
        self, conn: asyncpg.Connection, status: FlowStatus | None, limit: int | None
    ) -> list[FlowRecord]:
        if status is None:
            rows = await conn.fetch(self._sql.list_flows, limit)
        else:
            rows = await conn.fetch(self._sql.list_flows_by_status, status.value, limit)
        return [await self._flow_record(conn, row) for row in rows]

    async def due_timers(self, now: float, limit: int) -> list[UUID]:
        """`FindsDueTimers`: paused flows whose timer is due at ``now``, earliest first."""
        rows = await self._db.run(fetch, self._sql.due_timers, now, limit)
        return [codec.plain_uuid(row[0]) for row in rows]

    async def record_counts(self, flow_ids: list[UUID]) -> dict[UUID, dict[str, int]]:
        """How many nodes of every flow are in each status, by their latest record
        (``qm flows list``), counted by the server."""
        rows = await self._db.run(fetch, self._sql.record_counts, flow_ids)
        counts: dict[UUID, dict[str, int]] = {f: {} for f in flow_ids}
        for fid, status, count in rows:
            counts.setdefault(codec.plain_uuid(fid), {})[status] = count
        return counts

    # -- concurrency slots (`HoldsSlots`) ------------------------------------------------

    async def take_slot(
        self, key: str, holder: str, limit: int, now: float, expires_at: float
    ) -> int:
        """Take a slot of ``key`` in first-come order: 0, else the holder's place in
        the key's line (`HoldsSlots.take_slot`; one round trip: ``qm_take_slot``)."""
        sql = self._sql.slot_take
        return int(await self._db.run(fetchval, sql, key, holder, limit, now, expires_at))

    async def renew_slot(self, key: str, holder: str, expires_at: float) -> bool:
        """Move the holder's slot's expiry; False if it lapsed."""
        return bool(await self._db.run(fetchval, self._sql.slot_renew, key, holder, expires_at))

    async def release_slot(self, key: str, holder: str) -> None:
        """Give the holder's slot up."""
        await self._db.run(execute, self._sql.slot_release, key, holder)

    def releases_slots_in_commit(self) -> bool:
        """Its commits give up `Commit.release_slots` in their statement
        (`ReleasesSlotsInCommit`; schema version 4's ``qm_commit_counted``)."""
        return True

    async def take_request(self, key: str, limit: int, per: float, now: float) -> float:
        """Count a start of ``key`` if its window has room (0.0), else the seconds to wait
        (one round trip: the ``qm_take_request`` function)."""
        sql = self._sql.take_request
        oldest = float(await self._db.run(fetchval, sql, key, limit, per, now))
        return 0.0 if oldest == 0 else max(0.0, oldest + per - now)

    async def take_request_in_line(self, ask: WindowAsk) -> tuple[int, float]:
        """`take_request` in its line's order (`KeepsWindowLines`; one round trip:
        ``qm_take_request_in_line``, schema version 5)."""
        place, wait = await self._db.run(fetchval, self._sql.request_in_line, *ask)
        return int(place), float(wait)

    async def take_tokens_in_line(self, ask: WindowAsk, leave: bool) -> tuple[int, float]:
        """Room for tokens in the line's order (`KeepsWindowLines`; one round trip:
        ``qm_take_tokens_in_line``, schema version 5)."""
        place, wait = await self._db.run(fetchval, self._sql.tokens_in_line, *ask, leave)
        return int(place), float(wait)

    async def requests_in_window(self, key: str, per: float, now: float) -> int:
        """Starts of ``key`` in the ``per`` seconds before ``now``, of every process."""
        sql = self._sql.requests_in_window
        return int(await self._db.run(fetchval, sql, key, now - per))

    async def slots_in_use(self, now: float) -> dict[str, int]:
        """Unexpired slots per key, of every process using the schema."""
        rows = await self._db.run(fetch, self._sql.slots_in_use, now)
        return {str(key): int(count) for key, count in rows}

    # -- LLM tokens per limit key in its window (`LimitsTokens`) ---------------------------

    async def add_tokens(self, key: str, tokens: int, now: float, per: float) -> None:
        """Count ``tokens`` used by ``key`` at ``now``."""
        await self._db.run(execute, self._sql.tokens_add, key, now, tokens, now - per)

    async def tokens_in_window(self, key: str, per: float, now: float) -> list[tuple[float, int]]:
        """``key``'s token counts in the ``per`` seconds before ``now``, oldest first."""
        rows = await self._db.run(fetch, self._sql.tokens_in_window, key, now - per)
        return [(float(at), int(tokens)) for at, tokens in rows]

    # -- usage of budget keys across flows (`KeepsKeyUsage`) ------------------------------

    async def add_key_usage(self, key: str, node_runs: int, tokens: int, cost: float) -> None:
        """Add to ``key``'s usage across flows."""
        await self._db.run(execute, self._sql.usage_add, key, node_runs, tokens, float(cost))

    async def keys_usage(self, keys: Sequence[str]) -> list[tuple[int, int, float]]:
        """``(node_runs, tokens, cost)`` of each of ``keys`` (zeros for a key not seen):
        one query."""
        rows = await self._db.run(fetch, self._sql.usage_of, list(keys))
        found = {str(k): (int(r), int(t), float(c)) for k, r, t, c in rows}
        return [found.get(key, (0, 0, 0.0)) for key in keys]

    async def key_usages(self) -> dict[str, tuple[int, int, float]]:
        """The usage of every budget key with some."""
        rows = await self._db.run(fetch, self._sql.usages)
        return {str(k): (int(r), int(t), float(c)) for k, r, t, c in rows}

    # -- activations waiting for a limit key (`CountsWaiters`) ----------------------------

    async def mark_waiting(self, key: str, waiter: str, now: float, expires_at: float) -> None:
        """Record ``waiter`` as waiting for ``key`` until ``expires_at``."""
        await self._db.run(execute, self._sql.wait_mark, key, waiter, now, expires_at)

    async def unmark_waiting(self, key: str, waiter: str) -> None:
        """The waiter waits no more."""
        await self._db.run(execute, self._sql.wait_unmark, key, waiter)

    async def waiting_counts(self, now: float) -> dict[str, int]:
        """Unexpired waiters per key, of every process using the schema."""
        rows = await self._db.run(fetch, self._sql.waiting_counts, now)
        return {str(key): int(count) for key, count in rows}

    async def delete_flow(self, flow_id: UUID) -> bool:
        """Remove the flow and everything stored for it; True if anything was stored."""
        removed: int = await self._db.run(self._delete, [flow_id])
        return removed > 0

    async def _delete(self, conn: asyncpg.Connection, fids: list[UUID]) -> int:
        """Delete flows and their rows in one transaction, then their graphs unless
        another flow uses them. Returns how many rows went."""
        sql = self._sql
        async with conn.transaction():
            digests = [r[0] for r in await conn.fetch(sql.delete_flow, fids)]
            removed = len(digests)
            for statement in sql.delete_rows:
                status = await conn.execute(statement, fids)
                removed += int(status.rsplit(" ", 1)[1])
        if digests:
            # A flow of that graph created meanwhile keeps it (its foreign key).
            with contextlib.suppress(pgerr.ForeignKeyViolationError):
                await conn.execute(sql.drop_graphs, sorted(set(digests)))
            self._stored_graphs.difference_update(digests)
        return removed

    async def clear_flow(self, flow_id: UUID) -> None:
        """Remove everything stored for the flow (0.1.5's name for `delete_flow`)."""
        await self.delete_flow(flow_id)

    async def prune(self, older_than: timedelta | None = None) -> int:
        """Delete ended flows last updated longer ago than ``older_than`` (default:
        `retention`); return how many. Paused and running flows are kept."""
        age = older_than if older_than is not None else self.retention
        if age is None:
            raise ValueError(
                f"prune() needs an age: the store {self._db.describe()} has no retention"
            )
        return await self._db.run(self._prune, time.time() - age.total_seconds())

    async def _prune(self, conn: asyncpg.Connection, cutoff: float) -> int:
        pruned = 0
        while True:
            async with conn.transaction():
                rows = await conn.fetch(self._sql.prune_batch, TERMINAL, cutoff)
                fids = [r[0] for r in rows]
                if fids:
                    await self._delete(conn, fids)
            if not fids:
                return pruned
            pruned += len(fids)

    # -- commits ----------------------------------------------------------------------------

    async def commit(self, flow_id: UUID, commit: Commit) -> None:
        """Apply one activation's outcome after its fencing checks (see
        `DurableStore.commit`): one statement, one transaction, with its usage
        counts (`Commit.key_usage`, `Commit.key_tokens`) and the slots it gives up
        (`Commit.release_slots`): ``qm_commit_counted``."""
        touch = None
        now = time.time()
        touched = self._touched
        if now - touched.get(flow_id, 0.0) >= TOUCH_INTERVAL:
            if len(touched) >= _TOUCHED_MAX:
                touched.clear()
            touched[flow_id] = touch = now
        args = codec.commit_args(flow_id, commit, touch, self._queue_order)
        sql = self._sql.commit
        if commit.key_usage or commit.key_tokens or commit.release_slots:  # same statement
            args += codec.count_args(commit)
            sql = self._sql.commit_counted
        refused = await self._db.fetchval_in_order(flow_id, sql, args)
        if refused is not None:
            raise refusal(flow_id, refused, self.describe(), epoch=commit.epoch, commit=commit)

    async def load_flow(self, flow_id: UUID, *, records_after: int = 0) -> FlowSnapshot | None:
        """Everything needed to continue the flow, read in one statement (one snapshot);
        its records are those numbered above ``records_after``."""
        return await self._db.run(self._load, flow_id, records_after)

    async def _load(
        self, conn: asyncpg.Connection, flow_id: UUID, records_after: int
    ) -> FlowSnapshot | None:
        row = await conn.fetchrow(self._sql.load_flow, flow_id, records_after)
        if row is None:
            return None
        records, count, memory, pending, deliveries, exits = row[FLOW_WIDTH:]
        loads = codec.loads
        return FlowSnapshot(
            flow=await self._flow_record(conn, row),
            memory=loads(memory) if memory else {},
            records=codec.decode_records(records),
            pending=[Activation.from_dict(a) for a in loads(pending)] if pending else [],
            deliveries=[
                Delivery(UUID(t), slot, UUID(e), None if src is None else (UUID(src), visit))
                for t, slot, e, src, visit in (loads(deliveries) if deliveries else ())
            ],
            loop_exits=[(UUID(h), UUID(e)) for h, e in (loads(exits) if exits else ())],
            record_count=count,
        )

    async def read_changes(
        self, flow_id: UUID, after: int, *, records_after: int = 0
    ) -> FlowChanges | None:
        """What changed since version ``after`` (the `ReadsChanges` ability), read in
        one statement (one snapshot)."""
        return await self._db.run(self._read_changes, flow_id, after, records_after)

    async def _read_changes(
        self, conn: asyncpg.Connection, flow_id: UUID, after: int, records_after: int
    ) -> FlowChanges | None:
        row = await conn.fetchrow(self._sql.read_changes, flow_id, after, records_after)
        if row is None:
            return None
        count, records, kept = row[FLOW_WIDTH:]
        flow = await self._flow_record(conn, row)
        if flow.version == after:
            return FlowChanges(flow, [], count, [])
        changes = [
            (version, change_from_dict(codec.loads(body) if isinstance(body, str) else body))
            for version, body in (codec.loads(kept) if kept else ())
        ]
        return FlowChanges(
            flow, codec.decode_records(records), count, changes_after(changes, after, flow.version)
        )

    # -- leases and the event log ---------------------------------------------------------

    async def acquire_lease(
        self, flow_id: UUID, owner: str, ttl: float, *, take_over: int | None = None
    ) -> Lease:
        """Make ``owner`` the flow's driver for ``ttl`` seconds (see
        `DurableStore.acquire_lease`), under a lock of the flow's row."""
        return await self._db.run(
            leases.acquire, self._sql, self.describe(), flow_id, owner, ttl, take_over
        )

    async def renew_lease(self, flow_id: UUID, epoch: int, ttl: float) -> Lease:
        """Extend the lease of ``epoch`` by ``ttl`` seconds from now; `StaleLeaseError`
        if the flow's lease is no longer that epoch."""
        return await self._db.run(leases.renew, self._sql, self.describe(), flow_id, epoch, ttl)

    async def release_lease(self, flow_id: UUID, epoch: int) -> None:
        """End the lease of ``epoch`` (nothing happens if it is no longer current)."""
        await self._db.run(execute, self._sql.release_lease, flow_id, epoch)

    async def read_events(
        self, flow_id: UUID, after: int = 0, limit: int | None = None
    ) -> list[FlowEvent]:
        """The flow's logged events numbered above ``after``, in order (at most ``limit``)."""
        body = await self._db.run(fetchval, self._sql.read_events, flow_id, after, limit)
        return codec.decode_events(body)

    # -- 0.1.5 contract ----------------------------------------------------------------------

    async def save_node_execution(
        self, flow_id: UUID, node_id: UUID, execution: NodeExecution
    ) -> None:
        """Append a record of the node (its latest from now on)."""
        body = codec.encode_record(execution)
        await self._db.run(
            execute, self._sql.save_record, flow_id, node_id, execution.status.value, body
        )

    async def get_node_execution(self, flow_id: UUID, node_id: UUID) -> NodeExecution | None:
        """The node's latest record, or None."""
        body = await self._db.run(fetchval, self._sql.latest_record, flow_id, node_id)
        return None if body is None else NodeExecution.from_dict(codec.loads(body))

    async def get_all_node_executions(self, flow_id: UUID) -> dict[UUID, NodeExecution]:
        """``{node_id: latest record}`` for the flow."""
        body = await self._db.run(fetchval, self._sql.records, flow_id)
        return {rec.node_id: rec for rec in codec.decode_records(body)}

    async def save_memory(self, flow_id: UUID, key: str, value: Any) -> None:
        """Set a flow-memory value (a JSON value)."""
        encoded = codec.dumps(value, f"flow memory {key!r} of flow {flow_id}")
        await self._db.run(execute, self._sql.set_memory, flow_id, key, encoded)

    async def get_memory(self, flow_id: UUID, key: str) -> Any:
        """A flow-memory value, or None."""
        body = await self._db.run(fetchval, self._sql.get_memory, flow_id, key)
        return None if body is None else codec.loads(body)

    async def get_all_memory(self, flow_id: UUID) -> dict[str, Any]:
        """The flow's memory as a new dict."""
        body = await self._db.run(fetchval, self._sql.all_memory, flow_id)
        return codec.loads(body) if body else {}

    async def delete_memory(self, flow_id: UUID, key: str) -> None:
        """Remove a flow-memory value (no error when absent)."""
        await self._db.run(execute, self._sql.delete_memory, flow_id, key)

    async def save_messages(self, flow_id: UUID, node_id: UUID, messages: list[Message]) -> None:
        """Replace the node's message history."""
        body = codec.encode_messages(messages)
        await self._db.run(execute, self._sql.set_messages, flow_id, node_id, body)

    async def get_messages(self, flow_id: UUID, node_id: UUID) -> list[Message]:
        """The node's history: saved explicitly (unless a record of the node was
        committed since), else the one its latest record ends."""
        return await self._db.run(self._messages, flow_id, node_id)

    async def _messages(
        self, conn: asyncpg.Connection, flow_id: UUID, node_id: UUID
    ) -> list[Message]:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            saved = await conn.fetchrow(self._sql.saved_messages, flow_id, node_id)
            if saved is not None and saved[1]:
                return codec.decode_messages(saved[0])
            body = await conn.fetchval(self._sql.records, flow_id)
        return history_of(codec.decode_records(body), node_id)

    async def append_message(self, flow_id: UUID, node_id: UUID, message: Message) -> None:
        """Append one message to the node's history."""
        history = await self.get_messages(flow_id, node_id)
        history.append(message)
        await self.save_messages(flow_id, node_id, history)
