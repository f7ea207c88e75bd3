"""The timer index: which paused flows wait for a timer, for `due_timers`
(`FindsDueTimers`, the engine's clock loop).

``<p>:timers`` is a sorted set of flow ids scored by their first timer's time.
It lives under its own key (no flow's hash tag), so it is never written by a
flow's scripts: it is a *hint*, written before the flow is marked paused (so a
parked flow is always in it) and checked against the flow's own keys when read.
An entry whose flow has ended, is gone, or is paused without a timer is
dropped, only if its score did not change meanwhile (a flow that parked again
re-scored it); a running flow's entry stays until it pauses or ends.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson

from qm_store_redis.codec import text
from qm_store_redis.keys import KeySpace
from qm_store_redis.scripts import Script
from qm_store_redis.wire import Client

#: KEYS: the timer index. ARGV: flow id, the score read. Drops the entry if unchanged.
DROP_IF_UNCHANGED = Script(
    "drop_timer_if_unchanged",
    r"""
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
""",
)


def first_timer(pending_values: list[bytes]) -> float | None:
    """The earliest ``not_before`` of queued activations (a sleep, a retry, a wait's
    deadline; the pending hash's values are ``sort key<TAB>activation JSON``), or None."""
    first: float | None = None
    for value in pending_values:
        act = orjson.loads(value.split(b"\t", 1)[1])
        due = float(act.get("not_before") or 0.0)
        if due and (first is None or due < first):
            first = due
    return first


async def index_if_timed(client: Client, keys: KeySpace, flow_id: UUID) -> None:
    """Before a flow is marked paused: index it if it has a timer."""
    pending = await client.command("HVALS", keys.flow(flow_id)[4])
    first = first_timer(list(pending or ()))
    if first is not None:
        await client.command("ZADD", keys.timers, repr(first), str(flow_id))


async def due(client: Client, keys: KeySpace, now: float, limit: int, evaluate: Any) -> list[UUID]:
    """Paused flows whose first timer is at most ``now``, earliest first (at most
    ``limit``); ``evaluate(client, script, keys, args)`` runs a script."""
    flat = await client.command(
        "ZRANGEBYSCORE", keys.timers, "-inf", repr(now), "WITHSCORES", "LIMIT", 0, limit * 4
    )
    found: list[UUID] = []
    for i in range(0, len(flat or ()), 2):
        member, score = flat[i], flat[i + 1]
        flow_id = UUID(text(member))
        flow_keys = keys.flow(flow_id)
        status = await client.command("HGET", flow_keys[0], "status")
        if status is not None and text(status) == "running":
            continue  # being driven: it pauses (re-indexed) or ends (dropped later)
        first = None
        if status is not None and text(status) == "paused":
            first = first_timer(list(await client.command("HVALS", flow_keys[4]) or ()))
        if first is None:
            await evaluate(client, DROP_IF_UNCHANGED, (keys.timers,), (str(flow_id), score))
        elif first <= now and len(found) < limit:
            found.append(flow_id)
    return found
