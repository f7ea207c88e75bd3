"""Lease changes, as functions of a connection for `Database.run`.

A lease is taken under a row lock: `acquire` reads the flow's row ``FOR NO KEY
UPDATE`` and writes the next epoch in the same transaction, so of two processes
taking a flow at once one gets it and the other waits, then sees the new lease.
The rules and their wording are core's (`quartermaster_engine.stores.fencing`).
"""

from __future__ import annotations

import time
from uuid import UUID

import asyncpg

from qm_store_postgres.queries import Queries
from quartermaster_engine.stores.base import FlowNotFoundError
from quartermaster_engine.stores.fencing import check_fence, check_lease_free
from quartermaster_engine.stores.records import FlowStatus, Lease


async def acquire(
    conn: asyncpg.Connection,
    sql: Queries,
    where: str,
    flow_id: UUID,
    owner: str,
    ttl: float,
    take_over: int | None,
) -> Lease:
    """Make ``owner`` the flow's driver for ``ttl`` seconds; ``where`` names the store."""
    async with conn.transaction():
        row = await conn.fetchrow(sql.lock_lease, flow_id)
        if row is None:
            raise FlowNotFoundError(f"no flow {flow_id} in {where}")
        _, holder, epoch, expires = row
        now = time.time()
        current = None if holder is None else Lease(holder, epoch, expires)
        check_lease_free(flow_id, current, now, take_over)
        lease = Lease(owner, epoch + 1, now + ttl)
        await conn.execute(sql.set_lease, flow_id, lease.owner, lease.epoch, lease.expires_at)
    return lease


async def renew(
    conn: asyncpg.Connection, sql: Queries, where: str, flow_id: UUID, epoch: int, ttl: float
) -> Lease:
    """Extend the lease of ``epoch``: one statement, and a read saying why when it
    changed nothing (epochs only grow, so a stale one is still stale then)."""
    expires = time.time() + ttl
    owner = await conn.fetchval(sql.renew_lease, flow_id, epoch, expires)
    if owner is None:
        row = await conn.fetchrow(sql.lease_state, flow_id)
        if row is None:
            raise FlowNotFoundError(f"no flow {flow_id} in {where}")
        status, holder, current = row
        check_fence(flow_id, FlowStatus(status), current, holder, epoch, ending=False)
    return Lease(owner or "", epoch, expires)
