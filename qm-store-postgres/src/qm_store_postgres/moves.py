"""`MovesFlows` on PostgreSQL: a flow moved to another graph (`Engine.migrate`).

One transaction stores the new graph (once per content), locks the flow's row,
checks the fence (`fencing.check_move`: the lease epoch and the status the
mover read), points the row at the new graph and logs the events; the old graph
is then dropped unless another flow uses it (its foreign key keeps it)."""

from __future__ import annotations

import contextlib
from uuid import UUID

import asyncpg
from asyncpg import exceptions as pgerr

from qm_store_postgres import codec
from qm_store_postgres.database import Database
from quartermaster_engine.stores.base import FlowNotFoundError
from quartermaster_engine.stores.fencing import check_move
from quartermaster_engine.stores.graphs import GraphCache
from quartermaster_engine.stores.records import FlowMove, FlowStatus


class PostgresMoves:
    """The `MovesFlows` method of `PostgresStore` (which sets ``_db``, ``_graphs``
    and ``schema_name``)."""

    _db: Database
    _graphs: GraphCache
    schema_name: str

    async def move_flow(self, flow_id: UUID, move: FlowMove) -> None:
        """Replace the flow's graph and log the move's events (see `MovesFlows`)."""
        digest, spec = self._graphs.row(move.graph)
        await self._db.run(self._move, flow_id, move, digest, spec)

    async def _move(
        self, conn: asyncpg.Connection, flow_id: UUID, move: FlowMove, digest: str, spec: str
    ) -> None:
        s = self.schema_name
        seqs, bodies = codec.event_args(move.events)
        async with conn.transaction():
            await conn.execute(
                f"INSERT INTO {s}.qm_graphs (hash, spec) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                digest,
                spec,
            )
            head = await conn.fetchrow(
                f"SELECT status, lease_epoch, lease_owner, graph_hash FROM {s}.qm_flows "
                "WHERE flow_id = $1 FOR UPDATE",
                flow_id,
            )
            if head is None:
                raise FlowNotFoundError(f"no flow {flow_id}")
            check_move(flow_id, FlowStatus(head[0]), head[1], head[2], move)
            await conn.execute(
                f"UPDATE {s}.qm_flows SET graph_hash = $2, updated_at = $3, "
                "event_seq = coalesce($4, event_seq) WHERE flow_id = $1",
                flow_id,
                digest,
                move.updated_at,
                seqs[-1] if seqs else None,
            )
            if seqs:
                await conn.execute(
                    f"INSERT INTO {s}.qm_events (flow_id, seq, body) "
                    "SELECT $1, q, b FROM unnest($2::bigint[], $3::jsonb[]) AS ev(q, b)",
                    flow_id,
                    seqs,
                    bodies,
                )
        old = head[3]
        if old != digest:
            # A flow of that graph created meanwhile keeps it (its foreign key).
            with contextlib.suppress(pgerr.ForeignKeyViolationError):
                await conn.execute(
                    f"DELETE FROM {s}.qm_graphs g WHERE hash = $1 AND NOT EXISTS "
                    f"(SELECT 1 FROM {s}.qm_flows f WHERE f.graph_hash = g.hash)",
                    old,
                )
