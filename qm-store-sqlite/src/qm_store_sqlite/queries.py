"""The store's SQL: functions of a sqlite3 connection, run inside the transaction the
caller opened (see `connection.Database.write` / `run`).

The statements are constant strings, so sqlite3 prepares each once per
connection and reuses it.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, NoReturn
from uuid import UUID

from qm_store_sqlite import codec
from qm_store_sqlite.connection import in_write_tx
from qm_store_sqlite.graphs import GraphCache
from qm_store_sqlite.schema import FLOW_TABLES
from quartermaster_engine.context.node_execution import NodeExecution
from quartermaster_engine.events import FlowEvent, event_from_dict
from quartermaster_engine.messaging.history import history_of
from quartermaster_engine.stores.base import FlowExistsError, FlowNotFoundError
from quartermaster_engine.stores.changes import (
    KEPT_CHANGES,
    FlowChanges,
    change_from_dict,
    changes_after,
)
from quartermaster_engine.stores.fencing import (
    check_fence,
    check_lease_free,
    duplicate_commit,
    not_waiting,
)
from quartermaster_engine.stores.records import (
    FlowRecord,
    FlowSnapshot,
    FlowStatus,
    Lease,
)
from quartermaster_engine.types import Message

TERMINAL = tuple(s.value for s in FlowStatus if s.is_terminal)
#: Flows deleted per transaction by `prune`, so other writers are not held up long.
PRUNE_BATCH = 200

FLOW_COLUMNS = (
    "flow_id, graph_hash, input, status, created_at, updated_at, error, final_output, "
    "event_seq, parent_flow_id, version, lease_owner, lease_epoch, lease_expires"
)

_HEAD = (
    "SELECT (SELECT 1 FROM qm_flows WHERE flow_id = ?), "
    "(SELECT max(seq) FROM qm_records WHERE flow_id = ?)"
)
# What a commit checks before it writes (in its own write transaction).
_FENCE = (
    "SELECT status, lease_epoch, lease_owner, (SELECT max(seq) FROM qm_records WHERE flow_id = ?) "
    "FROM qm_flows WHERE flow_id = ?"
)
# The fence and the flow row's update in one statement: it changes the row only
# if the flow runs and the epoch (when given) is current, and returns the number
# of the flow's last record. No row back: `_FENCE` then says why.
_FENCED_BUMP = (
    "UPDATE qm_flows SET version = version + 1, event_seq = max(event_seq, ?), "
    "updated_at = coalesce(?, updated_at) "
    f"WHERE flow_id = ? AND status NOT IN {TERMINAL!r} "
    "AND (? IS NULL OR lease_epoch = ?) "
    "RETURNING (SELECT max(seq) FROM qm_records WHERE flow_id = ?), version"
)
_ADD_CHANGE = "INSERT INTO qm_changes (flow_id, version, body) VALUES (?, ?, ?)"
_TRIM_CHANGES = "DELETE FROM qm_changes WHERE flow_id = ? AND version <= ?"
_DONE = "DELETE FROM qm_pending WHERE flow_id = ? AND node_id = ? AND visit = ?"
_DONE_ATTEMPT = _DONE + " AND attempt = ?"
_IS_WAITING = "SELECT waiting FROM qm_pending WHERE flow_id = ? AND node_id = ? AND visit = ?"
_ADD_EVENT = "INSERT INTO qm_events (flow_id, seq, body) VALUES (?, ?, ?)"


def _insert(verb: str, table: str, columns: str) -> str:
    names = [c.strip() for c in columns.split(",")]
    return f"{verb} INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


_ADD_FLOW = _insert("INSERT", "qm_flows", FLOW_COLUMNS)
_ADD_RECORD = _insert("INSERT", "qm_records", f"flow_id, seq, {codec.RECORD_COLUMNS}")
_SET_MEMORY = "INSERT OR REPLACE INTO qm_memory (flow_id, key, value) VALUES (?, ?, ?)"
_ADD_DELIVERY = (
    "INSERT OR REPLACE INTO qm_deliveries "
    "(flow_id, target, slot, edge, source, source_visit) VALUES (?, ?, ?, ?, ?, ?)"
)
_CLOSE_SLOT = "DELETE FROM qm_deliveries WHERE flow_id = ? AND target = ? AND slot = ?"
_ENQUEUE = _insert("INSERT OR REPLACE", "qm_pending", f"flow_id, {codec.PENDING_COLUMNS}")
_RESET_LOOP = "DELETE FROM qm_loop_exits WHERE flow_id = ? AND header = ?"
_ADD_LOOP_EXIT = "INSERT OR IGNORE INTO qm_loop_exits (flow_id, header, edge) VALUES (?, ?, ?)"
_SET_MESSAGES = (
    "INSERT OR REPLACE INTO qm_messages (flow_id, node_id, after_seq, body) "
    "VALUES (?, ?, (SELECT ifnull(max(seq), 0) FROM qm_records WHERE flow_id = ?), ?)"
)


# -- flows ---------------------------------------------------------------------------------------


def create_flow(db: sqlite3.Connection, row: tuple[Any, ...], spec: str) -> None:
    """Insert the flow row (and its graph, unless stored already)."""
    db.execute("INSERT OR IGNORE INTO qm_graphs (hash, spec) VALUES (?, ?)", (row[1], spec))
    try:
        db.execute(_ADD_FLOW, row)
    except sqlite3.IntegrityError:
        raise FlowExistsError(f"flow {UUID(bytes=row[0])} already exists") from None


def update_flow(
    db: sqlite3.Connection,
    row: tuple[Any, ...],
    terminal: bool,
    epoch: int | None,
    release: bool,
    events: list[tuple[bytes, int, str]],
) -> None:
    """Set status, updated_at, error, final_output, event_seq (under the lease of
    ``epoch``, when given); log ``events``; a terminal status also drops the queue,
    join deliveries and loop marks."""
    fid = row[-1]
    if epoch is not None:
        head = db.execute(_FENCE, (fid, fid)).fetchone()
        if head is None:
            raise FlowNotFoundError(f"no flow {UUID(bytes=fid)}")
        check_fence(UUID(bytes=fid), FlowStatus(head[0]), head[1], head[2], epoch)
    changed = db.execute(
        "UPDATE qm_flows SET status = ?, updated_at = ?, error = ?, final_output = ?, "
        "event_seq = ? WHERE flow_id = ?",
        row,
    ).rowcount
    if not changed:
        raise FlowNotFoundError(f"no flow {UUID(bytes=fid)}")
    if release:
        db.execute(
            "UPDATE qm_flows SET lease_owner = NULL, lease_expires = 0 WHERE flow_id = ?", (fid,)
        )
    if events:
        _write_rows(db, _ADD_EVENT, events)
    if terminal:
        for table in ("qm_pending", "qm_deliveries", "qm_loop_exits", "qm_changes"):
            db.execute(f"DELETE FROM {table} WHERE flow_id = ?", (fid,))


def flow_record(db: sqlite3.Connection, graphs: GraphCache, row: Any) -> FlowRecord:
    (fid, digest, input_text, status, created, updated, error, output, seq, parent) = row[:10]
    version, owner, epoch, expires = row[10:]
    return FlowRecord(
        flow_id=UUID(bytes=fid),
        graph=graphs.get(db, digest),
        input=input_text,
        status=FlowStatus(status),
        created_at=created,
        updated_at=updated,
        error=error,
        final_output=output,
        event_seq=seq,
        parent_flow_id=None if parent is None else UUID(bytes=parent),
        version=version,
        lease_owner=owner,
        lease_epoch=epoch,
        lease_expires=expires,
    )


def get_flow(db: sqlite3.Connection, graphs: GraphCache, fid: bytes) -> FlowRecord | None:
    row = db.execute(f"SELECT {FLOW_COLUMNS} FROM qm_flows WHERE flow_id = ?", (fid,)).fetchone()
    return None if row is None else flow_record(db, graphs, row)


def list_flows(
    db: sqlite3.Connection, graphs: GraphCache, status: str | None, limit: int | None
) -> list[FlowRecord]:
    where = "" if status is None else "WHERE status = ? "
    args: list[Any] = [] if status is None else [status]
    args.append(-1 if limit is None else limit)
    rows = db.execute(
        f"SELECT {FLOW_COLUMNS} FROM qm_flows {where}ORDER BY updated_at DESC LIMIT ?", args
    ).fetchall()
    return [flow_record(db, graphs, row) for row in rows]


def due_timers(db: sqlite3.Connection, now: float, limit: int) -> list[UUID]:
    """Paused flows with a timer (a queued activation with ``not_before`` set: a
    sleep, a retry, a wait's deadline) due at ``now``, earliest first: found through the status
    index, then each paused flow's queue by its primary key."""
    rows = db.execute(
        "SELECT p.flow_id, min(p.not_before) AS due FROM qm_flows f "
        "JOIN qm_pending p ON p.flow_id = f.flow_id "
        "WHERE f.status = 'paused' AND p.not_before > 0 "
        "AND p.not_before <= ? GROUP BY p.flow_id ORDER BY due LIMIT ?",
        (now, limit),
    ).fetchall()
    return [UUID(bytes=row[0]) for row in rows]


def record_counts(db: sqlite3.Connection, fids: list[bytes]) -> dict[UUID, dict[str, int]]:
    """``{flow: {status: nodes}}``: each node counted once, in the status of its
    latest record (`latest_records`), without decoding a record."""
    counts: dict[UUID, dict[str, int]] = {}
    for fid in fids:
        rows = db.execute(
            "SELECT status, count(*) FROM qm_records r WHERE flow_id = ? AND seq = "
            "(SELECT max(seq) FROM qm_records WHERE flow_id = r.flow_id AND node_id = r.node_id) "
            "GROUP BY status",
            (fid,),
        )
        counts[UUID(bytes=fid)] = dict(rows.fetchall())
    return counts


def delete_flows(db: sqlite3.Connection, fids: list[bytes]) -> int:
    """Delete the flows, their rows, and their graphs if no other flow uses them.
    Returns the number of rows deleted."""
    removed = 0
    digests: set[str] = set()
    for fid in fids:
        row = db.execute("SELECT graph_hash FROM qm_flows WHERE flow_id = ?", (fid,)).fetchone()
        if row is not None:
            digests.add(row[0])
            removed += db.execute("DELETE FROM qm_flows WHERE flow_id = ?", (fid,)).rowcount
        for table in FLOW_TABLES:
            removed += db.execute(f"DELETE FROM {table} WHERE flow_id = ?", (fid,)).rowcount
    for digest in digests:
        db.execute(
            "DELETE FROM qm_graphs WHERE hash = ? AND NOT EXISTS "
            "(SELECT 1 FROM qm_flows WHERE graph_hash = ?)",
            (digest, digest),
        )
    return removed


def prune(db: sqlite3.Connection, cutoff: float) -> int:
    """Delete ended flows updated before ``cutoff``, a batch per write transaction."""
    pruned = 0
    while batch := in_write_tx(db, _prune_batch, cutoff):
        pruned += batch
    return pruned


def _prune_batch(db: sqlite3.Connection, cutoff: float) -> int:
    marks = ",".join("?" * len(TERMINAL))
    fids = [
        r[0]
        for r in db.execute(
            f"SELECT flow_id FROM qm_flows WHERE status IN ({marks}) AND updated_at < ? LIMIT ?",
            (*TERMINAL, cutoff, PRUNE_BATCH),
        )
    ]
    delete_flows(db, fids)
    return len(fids)


# -- commits -------------------------------------------------------------------------------------


class CommitRows:
    """A `Commit` as the keys and rows its transaction writes."""

    __slots__ = (
        "answers",
        "attempt",
        "change",
        "closed",
        "deliveries",
        "done",
        "epoch",
        "events",
        "exits",
        "fid",
        "memory",
        "pending",
        "record",
        "resets",
        "touch",
    )

    def __init__(self, fid: bytes) -> None:
        self.fid = fid
        #: The commit's frontier change as JSON, when it keeps it (`ReadsChanges`).
        self.change: str | None = None
        self.touch: float | None = None
        self.done: tuple[bytes, bytes, int] | None = None
        self.record: codec.RecordRow | None = None
        self.memory: list[tuple[bytes, str, str]] | None = None
        self.deliveries: list[tuple[Any, ...]] | None = None
        self.closed: list[tuple[bytes, bytes, int]] | None = None
        self.pending: list[tuple[Any, ...]] | None = None
        self.resets: list[tuple[bytes, bytes]] | None = None
        self.exits: list[tuple[bytes, bytes, bytes]] | None = None
        self.epoch: int | None = None
        self.attempt: int | None = None
        self.answers: tuple[bytes, bytes, int] | None = None
        self.events: list[tuple[bytes, int, str]] | None = None


def apply_commit(db: sqlite3.Connection, rows: CommitRows) -> None:
    """Apply a commit in the order `Commit` documents."""
    execute = db.execute
    fid = rows.fid
    # The fence (the flow exists and has not ended, the lease epoch is current)
    # and the flow row's update, which also numbers the record.
    events = rows.events
    epoch = rows.epoch
    bumped = execute(
        _FENCED_BUMP, (events[-1][1] if events else 0, rows.touch, fid, epoch, epoch, fid)
    ).fetchone()
    if bumped is None:
        _refuse(db, fid, epoch)
    last = bumped[0]
    done = rows.done
    if done is not None:
        if rows.attempt is None:
            removed = execute(_DONE, done).rowcount
        else:
            removed = execute(_DONE_ATTEMPT, (*done, rows.attempt)).rowcount
        if not removed:
            key = (UUID(bytes=done[1]), done[2])
            raise duplicate_commit(UUID(bytes=fid), key, rows.attempt)
    if rows.answers is not None:
        waiting = execute(_IS_WAITING, rows.answers).fetchone()
        if waiting is None or not waiting[0]:
            _, node, visit = rows.answers
            raise not_waiting(UUID(bytes=fid), (UUID(bytes=node), visit))
    record = rows.record
    if record is not None:
        execute(_ADD_RECORD, (fid, (last or 0) + 1, *record))
    if rows.memory:
        _write_rows(db, _SET_MEMORY, rows.memory)
    if rows.deliveries:
        _write_rows(db, _ADD_DELIVERY, rows.deliveries)
    if rows.closed:
        _write_rows(db, _CLOSE_SLOT, rows.closed)
    if rows.pending:
        _write_rows(db, _ENQUEUE, rows.pending)
    if rows.exits:
        _write_rows(db, _ADD_LOOP_EXIT, rows.exits)
    if rows.resets:
        _write_rows(db, _RESET_LOOP, rows.resets)
    if events:
        _write_rows(db, _ADD_EVENT, events)
    if rows.change is not None:
        version = bumped[1]
        execute(_ADD_CHANGE, (fid, version, rows.change))
        execute(_TRIM_CHANGES, (fid, version - KEPT_CHANGES))


def _refuse(db: sqlite3.Connection, fid: bytes, epoch: int | None) -> NoReturn:
    """Raise why a fenced write to the flow was refused."""
    head = db.execute(_FENCE, (fid, fid)).fetchone()
    if head is None:
        raise FlowNotFoundError(f"no flow {UUID(bytes=fid)}")
    status, current, owner, _ = head
    check_fence(UUID(bytes=fid), FlowStatus(status), current, owner, epoch)
    raise AssertionError("the fenced update matched no row, yet the fence holds")


def _write_rows(db: sqlite3.Connection, sql: str, rows: list[Any]) -> None:
    # One row is the usual case, and execute costs less than executemany.
    if len(rows) == 1:
        db.execute(sql, rows[0])
    else:
        db.executemany(sql, rows)


def load_flow(
    db: sqlite3.Connection, graphs: GraphCache, fid: bytes, records_after: int = 0
) -> FlowSnapshot | None:
    """The flow and its state, its records numbered above ``records_after``; run it
    in a read transaction (one snapshot)."""
    flow = get_flow(db, graphs, fid)
    if flow is None:
        return None
    key = (fid,)
    records = _records_after(db, fid, records_after)
    count = db.execute("SELECT max(seq) FROM qm_records WHERE flow_id = ?", key).fetchone()[0]
    pending = [
        codec.decode_activation(*r)
        for r in db.execute(
            f"SELECT {codec.PENDING_COLUMNS} FROM qm_pending WHERE flow_id = ? ORDER BY seq", key
        )
    ]
    deliveries = [
        codec.decode_delivery(*r)
        for r in db.execute(
            "SELECT target, slot, edge, source, source_visit FROM qm_deliveries WHERE flow_id = ?",
            key,
        )
    ]
    loop_exits = sorted(
        (
            (UUID(bytes=h), UUID(bytes=e))
            for h, e in db.execute("SELECT header, edge FROM qm_loop_exits WHERE flow_id = ?", key)
        ),
        key=str,
    )
    return FlowSnapshot(
        flow=flow,
        memory=all_memory(db, fid),
        records=records,
        pending=pending,
        deliveries=deliveries,
        loop_exits=loop_exits,
        record_count=count or 0,
    )


def _records_after(db: sqlite3.Connection, fid: bytes, after: int) -> list[NodeExecution]:
    """The flow's records numbered above ``after``, in commit order."""
    return [
        codec.decode_record(*r)
        for r in db.execute(
            f"SELECT {codec.RECORD_COLUMNS} FROM qm_records WHERE flow_id = ? AND seq > ? "
            "ORDER BY seq",
            (fid, after),
        )
    ]


def read_changes(
    db: sqlite3.Connection, graphs: GraphCache, fid: bytes, after: int, records_after: int
) -> FlowChanges | None:
    """The flow, its records numbered above ``records_after`` and the kept changes of
    its commits after version ``after`` (`ReadsChanges`); run it in a read
    transaction (one snapshot)."""
    flow = get_flow(db, graphs, fid)
    if flow is None:
        return None
    count = db.execute("SELECT max(seq) FROM qm_records WHERE flow_id = ?", (fid,)).fetchone()[0]
    if flow.version == after:
        return FlowChanges(flow, [], count or 0, [])
    records = _records_after(db, fid, records_after)
    kept = [
        (version, change_from_dict(codec.loads(body)))
        for version, body in db.execute(
            "SELECT version, body FROM qm_changes WHERE flow_id = ? AND version > ? "
            "ORDER BY version",
            (fid, after),
        )
    ]
    return FlowChanges(flow, records, count or 0, changes_after(kept, after, flow.version))


# -- 0.1.5's per-node methods ----------------------------------------------------------------------


def save_record(db: sqlite3.Connection, fid: bytes, record: codec.RecordRow) -> None:
    """0.1.5's save_node_execution: a record that, unlike a committed one, leaves a
    history saved with save_messages in place."""
    seq = (db.execute(_HEAD, (fid, fid)).fetchone()[1] or 0) + 1
    db.execute(_ADD_RECORD, (fid, seq, *record))
    # Only a saved history that still stands (no committed record after it).
    db.execute(
        "UPDATE qm_messages SET after_seq = ? WHERE flow_id = ? AND node_id = ? AND after_seq >= "
        "(SELECT ifnull(max(seq), 0) FROM qm_records WHERE flow_id = ? AND node_id = ? "
        "AND seq < ?)",
        (seq, fid, record[0], fid, record[0], seq),
    )


def latest_record(db: sqlite3.Connection, fid: bytes, node: bytes) -> NodeExecution | None:
    row = db.execute(
        f"SELECT {codec.RECORD_COLUMNS} FROM qm_records WHERE flow_id = ? AND node_id = ? "
        "ORDER BY seq DESC LIMIT 1",
        (fid, node),
    ).fetchone()
    return None if row is None else codec.decode_record(*row)


def latest_records(db: sqlite3.Connection, fid: bytes) -> dict[UUID, NodeExecution]:
    latest: dict[UUID, NodeExecution] = {}
    for row in db.execute(
        f"SELECT {codec.RECORD_COLUMNS} FROM qm_records WHERE flow_id = ? ORDER BY seq", (fid,)
    ):
        rec = codec.decode_record(*row)
        latest[rec.node_id] = rec
    return latest


def set_memory(db: sqlite3.Connection, fid: bytes, key: str, value: str) -> None:
    db.execute(_SET_MEMORY, (fid, key, value))


def get_memory(db: sqlite3.Connection, fid: bytes, key: str) -> Any:
    row = db.execute(
        "SELECT value FROM qm_memory WHERE flow_id = ? AND key = ?", (fid, key)
    ).fetchone()
    return None if row is None else codec.loads(row[0])


def all_memory(db: sqlite3.Connection, fid: bytes) -> dict[str, Any]:
    loads = codec.loads
    return {
        key: loads(value)
        for key, value in db.execute("SELECT key, value FROM qm_memory WHERE flow_id = ?", (fid,))
    }


def delete_memory(db: sqlite3.Connection, fid: bytes, key: str) -> None:
    db.execute("DELETE FROM qm_memory WHERE flow_id = ? AND key = ?", (fid, key))


def save_messages(db: sqlite3.Connection, fid: bytes, node: bytes, body: str) -> None:
    db.execute(_SET_MESSAGES, (fid, node, fid, body))


def append_message(db: sqlite3.Connection, fid: bytes, node: bytes, body: str) -> None:
    current = messages_of(db, fid, node)
    current.extend(codec.decode_messages(body))
    db.execute(_SET_MESSAGES, (fid, node, fid, codec.encode_messages(current)))


def messages_of(db: sqlite3.Connection, fid: bytes, node: bytes) -> list[Message]:
    """The node's history: the one saved explicitly unless a record of the node was
    committed after it, else the one its latest record ends."""
    row = db.execute(
        "SELECT body, after_seq >= (SELECT ifnull(max(seq), 0) FROM qm_records "
        "WHERE flow_id = ? AND node_id = ?) FROM qm_messages WHERE flow_id = ? AND node_id = ?",
        (fid, node, fid, node),
    ).fetchone()
    if row is not None and row[1]:
        return codec.decode_messages(row[0])
    rows = db.execute(
        f"SELECT {codec.RECORD_COLUMNS} FROM qm_records WHERE flow_id = ? ORDER BY seq", (fid,)
    )
    return history_of((codec.decode_record(*row) for row in rows), UUID(bytes=node))


# -- leases and the event log ----------------------------------------------------------------------


def _lease_row(db: sqlite3.Connection, fid: bytes) -> tuple[str, str | None, int, float]:
    row = db.execute(
        "SELECT status, lease_owner, lease_epoch, lease_expires FROM qm_flows WHERE flow_id = ?",
        (fid,),
    ).fetchone()
    if row is None:
        raise FlowNotFoundError(f"no flow {UUID(bytes=fid)}")
    return row  # type: ignore[no-any-return]


def acquire_lease(
    db: sqlite3.Connection, fid: bytes, owner: str, ttl: float, take_over: int | None
) -> Lease:
    _, holder, epoch, expires = _lease_row(db, fid)
    now = time.time()
    current = None if holder is None else Lease(holder, epoch, expires)
    check_lease_free(UUID(bytes=fid), current, now, take_over)
    lease = Lease(owner, epoch + 1, now + ttl)
    db.execute(
        "UPDATE qm_flows SET lease_owner = ?, lease_epoch = ?, lease_expires = ? WHERE flow_id = ?",
        (owner, lease.epoch, lease.expires_at, fid),
    )
    return lease


def renew_lease(db: sqlite3.Connection, fid: bytes, epoch: int, ttl: float) -> Lease:
    status, holder, current, _ = _lease_row(db, fid)
    check_fence(UUID(bytes=fid), FlowStatus(status), current, holder, epoch, ending=False)
    expires = time.time() + ttl
    db.execute("UPDATE qm_flows SET lease_expires = ? WHERE flow_id = ?", (expires, fid))
    return Lease(holder or "", epoch, expires)


def release_lease(db: sqlite3.Connection, fid: bytes, epoch: int) -> None:
    db.execute(
        "UPDATE qm_flows SET lease_owner = NULL, lease_expires = 0 "
        "WHERE flow_id = ? AND lease_epoch = ?",
        (fid, epoch),
    )


def read_events(
    db: sqlite3.Connection, fid: bytes, after: int, limit: int | None
) -> list[FlowEvent]:
    rows = db.execute(
        "SELECT body FROM qm_events WHERE flow_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        (fid, after, -1 if limit is None else limit),
    )
    return [event_from_dict(codec.loads(body)) for (body,) in rows]
