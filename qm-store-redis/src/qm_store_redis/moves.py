"""`MovesFlows` on Redis: a flow moved to another graph (`Engine.migrate`).

One script on the flow's keys checks the fence (lease epoch, and the status the
mover read), points the flow's hash at the new graph and appends the events; the
store adds the flow's reference to the new graph before it and drops the one to
the old graph after it (see `RedisStore.move_flow`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from uuid import UUID

from qm_store_redis.codec import dumps, text
from qm_store_redis.keys import KeySpace
from qm_store_redis.scripts import Script
from qm_store_redis.wire import Client
from quartermaster_engine.stores.base import FlowNotFoundError
from quartermaster_engine.stores.fencing import check_move
from quartermaster_engine.stores.records import FlowMove, FlowStatus

#: KEYS: the flow hash, its events list. ARGV: epoch, status read, new graph hash,
#: updated_at, then event JSONs (the last one's seq is ARGV[5] or ''). Returns
#: {1, old graph hash} when moved, else {code, status, epoch, owner}: 0 no flow,
#: -2 another epoch or status (the caller words it with `fencing.check_move`).
MOVE_FLOW = Script(
    "move_flow",
    r"""
local flow = KEYS[1]
local st = redis.call('HMGET', flow, 'status', 'lease_epoch', 'lease_owner', 'graph')
if not st[1] then return {0, '', '', ''} end
if st[2] ~= ARGV[1] or st[1] ~= ARGV[2] then
  return {-2, st[1], st[2] or '0', st[3] or ''}
end
redis.call('HSET', flow, 'graph', ARGV[3], 'updated_at', ARGV[4])
if ARGV[5] ~= '' then redis.call('HSET', flow, 'event_seq', ARGV[5]) end
for k = 6, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[k]) end
return {1, st[4] or ''}
""",
)

Eval = Callable[[Client, Script, Sequence[str], Sequence[Any]], Awaitable[Any]]


async def move(
    client: Client, keys: KeySpace, flow_id: UUID, move: FlowMove, digest: str, run: Eval
) -> str:
    """Run `MOVE_FLOW`; the old graph's hash, or the store error of a refusal."""
    flow_keys = keys.flow(flow_id)
    events = [dumps(e.to_dict(), f"event {e.type}") for e in move.events]
    last = str(move.events[-1].seq) if move.events else ""
    args = [str(move.epoch), move.status.value, digest, repr(move.updated_at), last, *events]
    reply = await run(client, MOVE_FLOW, (flow_keys[0], flow_keys[8]), args)
    if int(reply[0]) == 1:
        return text(reply[1])
    if int(reply[0]) == 0:
        raise FlowNotFoundError(f"no flow {flow_id}")
    status, epoch, owner = FlowStatus(text(reply[1])), int(reply[2]), text(reply[3]) or None
    check_move(flow_id, status, epoch, owner, move)
    raise AssertionError(f"move_flow refused flow {flow_id} for no reason: {reply!r}")
