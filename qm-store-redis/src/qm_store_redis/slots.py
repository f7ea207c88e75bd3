"""Concurrency slots per limit key (`HoldsSlots`), shared by every process using the
Redis under this prefix.

One sorted set per key, ``<p>:slot:{<key>}``, holder -> when its slot expires; a
script drops the expired members, then adds the holder if fewer than the limit
remain (one key, one hash tag: Cluster-safe). ``<p>:slotkeys`` lists the keys
ever used, for `slots_in_use`. Starts per window (`LimitsRate`): one sorted set per
key, ``<p>:rate:{<key>}``, a member per start scored by its time, expiring with
its window. Waiters (`CountsWaiters`): one sorted set per key, ``<p>:wait:{<key>}``,
waiter -> when its mark expires; ``<p>:waitkeys`` lists the keys ever waited for.
The line of a key's slots (`HoldsSlots.take_slot`, first come first served):
``<p>:line:{<key>}``, waiter -> its ticket, counted up in ``<p>:ticket:{<key>}``;
the slot script drops expired waiters from both, then takes a slot when the
slots held plus the waiters ahead in the line are fewer than the limit.
LLM tokens per window (`LimitsTokens`): one sorted set per key, ``<p>:tokens:{<key>}``,
a member ``<tokens>:<unique>`` per count scored by its time, expiring with its window.
Usage of budget keys across flows (`KeepsKeyUsage`): one hash per key,
``<p>:usage:{<key>}`` (``node_runs``, ``tokens``, ``cost``), added to by one script;
``<p>:usagekeys`` lists the keys with usage.
A window's line (`KeepsWindowLines`) is a slots' line named ``<key> (window)``,
asked with the window in one script (`WINDOW_TURN`), except on a Redis Cluster node:
the line's hash tag is not the window's, so there the line and the window are asked
in separate calls (`runner.window_line.LineThenWindow`).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from typing import Any

from qm_store_redis.scripts import Script
from quartermaster_engine.stores.records import TokenCount, UsageCount

# Drops the waiters of KEYS[2] (waiter -> expiry) expired at ARGV[n] from it and
# from the line KEYS[3] (waiter -> ticket).
_DROP_WAITERS = r"""
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[{n}])
for _, waiter in ipairs(gone) do redis.call('ZREM', KEYS[3], waiter) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[{n}])
"""

#: KEYS: the key's slot set, waiter set, line, ticket counter. ARGV: holder, limit,
#: now, expires_at. 0 if taken, else the holder's place in the line (1: next).
TAKE_SLOT = Script(
    "slot_take",
    r"""
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
"""
    + _DROP_WAITERS.replace("{n}", "3")
    + r"""
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
  return 0
end
local ahead = redis.call('ZRANK', KEYS[3], ARGV[1])
if not ahead then ahead = redis.call('ZCARD', KEYS[3]) end
if redis.call('ZCARD', KEYS[1]) + ahead < tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
  return 0
end
if not redis.call('ZSCORE', KEYS[3], ARGV[1]) then
  redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[4]), ARGV[1])
end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return ahead + 1
""",
)

#: KEYS: the key's slot set. ARGV: holder, expires_at. 1 if the holder had a slot.
RENEW = Script(
    "slot_renew",
    r"""
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
""",
)


#: KEYS: the key's start set. ARGV: limit, now, a unique member, now - per, per in
#: ms. "0" if the start was counted, else the score of the oldest start in the window.
TAKE_REQUEST = Script(
    "rate_take",
    r"""
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[4])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return '0'
end
return redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
""",
)


#: KEYS: a window line's slot set (unused), waiter set, line, ticket counter, then the
#: window's set (starts, or token counts). ARGV: waiter, wall now, expires_at, mode
#: ("r": starts, "t": tokens), limit, now, now - per, per in ms, a unique member (a
#: start's), leave ("1": a waiter let start leaves the line). `KeepsWindowLines`: the
#: window is asked only when no waiter is ahead of this one. {0, ""} if it may start,
#: else {its place, the score of the count whose leaving makes room ("" behind others)}.
WINDOW_TURN = Script(
    "window_turn",
    _DROP_WAITERS.replace("{n}", "2")
    + r"""
local ahead = redis.call('ZRANK', KEYS[3], ARGV[1])
if not ahead then ahead = redis.call('ZCARD', KEYS[3]) end
local wait = ''
if ahead == 0 then
  local limit = tonumber(ARGV[5])
  if ARGV[4] == 'r' then
    redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', ARGV[7])
    if redis.call('ZCARD', KEYS[5]) < limit then
      redis.call('ZADD', KEYS[5], ARGV[6], ARGV[9])
      redis.call('PEXPIRE', KEYS[5], ARGV[8])
    else
      wait = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')[2]
    end
  else
    local used = redis.call('ZRANGE', KEYS[5], '(' .. ARGV[7], '+inf', 'BYSCORE', 'WITHSCORES')
    local total = 0
    for i = 1, #used, 2 do total = total + tonumber(string.match(used[i], '^(%d+):')) end
    if total >= limit then
      for i = 1, #used, 2 do
        total = total - tonumber(string.match(used[i], '^(%d+):'))
        if total < limit then
          wait = used[i + 1]
          break
        end
      end
    end
  end
end
if ahead == 0 and wait == '' then
  if ARGV[10] == '1' then
    redis.call('ZREM', KEYS[3], ARGV[1])
    redis.call('ZREM', KEYS[2], ARGV[1])
  end
  return {0, ''}
end
if not redis.call('ZSCORE', KEYS[3], ARGV[1]) then
  redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[4]), ARGV[1])
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return {ahead + 1, wait}
""",
)


#: KEYS: the key's slot set (unused), waiter set, line. ARGV: waiter, now, expires_at. Drops
#: the expired waiters, then records this one (not in the line).
MARK_WAITING = Script(
    "wait_mark",
    _DROP_WAITERS.replace("{n}", "2")
    + r"""
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
""",
)

#: KEYS: the key's slot set (unused), waiter set, line. ARGV: waiter. It waits no more.
UNMARK_WAITING = Script(
    "wait_unmark",
    r"""
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
""",
)


#: KEYS: the key's token set. ARGV: now - per, now, member, per in ms.
ADD_TOKENS = Script(
    "tokens_add",
    r"""
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
""",
)


#: KEYS: the key's usage hash. ARGV: node runs, tokens, cost to add.
ADD_USAGE = Script(
    "usage_add",
    r"""
redis.call('HINCRBY', KEYS[1], 'node_runs', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'tokens', ARGV[2])
redis.call('HINCRBYFLOAT', KEYS[1], 'cost', ARGV[3])
return 1
""",
)


def token_args(tokens: int, now: float, per: float) -> tuple[str, str, str, int]:
    """ADD_TOKENS' ARGV (and each token count's in COMMIT_COUNTED): a unique member."""
    member = f"{int(tokens)}:{uuid.uuid4().hex[:12]}"
    return (repr(now - per), repr(now), member, max(1, math.ceil(per * 1000)))


def usage_of(fields: list[Any]) -> tuple[int, int, float]:
    """A usage hash's HMGET reply as ``(node_runs, tokens, cost)`` (zeros when unset)."""
    runs, tokens, cost = (
        "0" if v is None else (v.decode() if isinstance(v, bytes) else str(v)) for v in fields
    )
    return int(runs), int(tokens), float(cost)


def commit_counts(
    prefix: str,
    usage: Sequence[UsageCount],
    tokens: Sequence[TokenCount],
    release: Sequence[tuple[str, str]] = (),
) -> tuple[list[str], list[Any]]:
    """The keys COMMIT_COUNTED adds to COMMIT's, and the arguments it adds (``release``:
    the slots, ``(key, holder)``, it gives up)."""
    keys = [usage_index_key(prefix)]
    args: list[Any] = [len(usage)]
    for u in usage:
        keys.append(usage_key(prefix, u.key))
        args += (u.key, int(u.node_runs), int(u.tokens), repr(float(u.cost)))
    args.append(len(tokens))
    for t in tokens:
        keys.append(tokens_key(prefix, t.key))
        args += token_args(t.tokens, t.at, t.per)
    args.append(len(release))
    for key, holder in release:
        keys.append(slot_key(prefix, key))
        args.append(holder)
    return keys, args


def usage_key(prefix: str, key: str) -> str:
    return f"{prefix}:usage:{{{key}}}"


def usage_index_key(prefix: str) -> str:
    return f"{prefix}:usagekeys"


def tokens_key(prefix: str, key: str) -> str:
    return f"{prefix}:tokens:{{{key}}}"


def wait_key(prefix: str, key: str) -> str:
    return f"{prefix}:wait:{{{key}}}"


def line_keys(prefix: str, key: str) -> tuple[str, str, str, str]:
    """The key's slot set, waiter set, line and ticket counter (one hash tag)."""
    return (
        slot_key(prefix, key),
        wait_key(prefix, key),
        f"{prefix}:line:{{{key}}}",
        f"{prefix}:ticket:{{{key}}}",
    )


def wait_index_key(prefix: str) -> str:
    return f"{prefix}:waitkeys"


def rate_key(prefix: str, key: str) -> str:
    return f"{prefix}:rate:{{{key}}}"


def slot_key(prefix: str, key: str) -> str:
    return f"{prefix}:slot:{{{key}}}"


def index_key(prefix: str) -> str:
    return f"{prefix}:slotkeys"
