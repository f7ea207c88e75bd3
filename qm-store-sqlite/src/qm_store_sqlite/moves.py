"""`MovesFlows` on SQLite: a flow moved to another graph (`Engine.migrate`).

One write transaction checks the fence (`fencing.check_move`: the lease epoch and
the status the mover read), points the flow's row at the new graph (stored once
per content in ``qm_graphs``), logs the events, and drops the old graph if no
other flow uses it."""

from __future__ import annotations

import sqlite3
from typing import Any
from uuid import UUID

from qm_store_sqlite import codec
from qm_store_sqlite.connection import Database
from qm_store_sqlite.graphs import GraphCache
from quartermaster_engine.stores.base import FlowNotFoundError
from quartermaster_engine.stores.fencing import check_move
from quartermaster_engine.stores.records import FlowMove, FlowStatus


def _move(
    db: sqlite3.Connection,
    fid: bytes,
    move: FlowMove,
    digest: str,
    spec: str,
    events: list[tuple[bytes, int, str]],
) -> None:
    head = db.execute(
        "SELECT status, lease_epoch, lease_owner, graph_hash FROM qm_flows WHERE flow_id = ?",
        (fid,),
    ).fetchone()
    flow_id = UUID(bytes=fid)
    if head is None:
        raise FlowNotFoundError(f"no flow {flow_id}")
    check_move(flow_id, FlowStatus(head[0]), head[1], head[2], move)
    db.execute("INSERT OR IGNORE INTO qm_graphs (hash, spec) VALUES (?, ?)", (digest, spec))
    seq = events[-1][1] if events else None
    db.execute(
        "UPDATE qm_flows SET graph_hash = ?, updated_at = ?, "
        "event_seq = coalesce(?, event_seq) WHERE flow_id = ?",
        (digest, move.updated_at, seq, fid),
    )
    db.executemany("INSERT INTO qm_events (flow_id, seq, body) VALUES (?, ?, ?)", events)
    old = head[3]
    if old != digest:
        db.execute(
            "DELETE FROM qm_graphs WHERE hash = ? AND NOT EXISTS "
            "(SELECT 1 FROM qm_flows WHERE graph_hash = ?)",
            (old, old),
        )


class SQLiteMoves:
    """The `MovesFlows` method of `SQLiteStore` (which sets ``_db`` and ``_graphs``)."""

    _db: Database
    _graphs: GraphCache

    async def move_flow(self, flow_id: UUID, move: FlowMove) -> None:
        """Replace the flow's graph and log the move's events (see `MovesFlows`)."""
        digest, spec = self._graphs.row(move.graph)
        fid = flow_id.bytes
        events: list[Any] = [(fid, e.seq, codec.dumps(e.to_dict())) for e in move.events]
        await self._db.write(_move, fid, move, digest, spec, events)
