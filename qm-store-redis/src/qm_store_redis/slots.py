"""Concurrency slots per limit key (`HoldsSlots`), shared by every process using the
Redis under this prefix.

One sorted set per key, ``<p>:slot:{<key>}``, holder -> when its slot expires; a
script drops the expired members, then adds the holder if fewer than the limit
remain (one key, one hash tag: Cluster-safe). ``<p>:slotkeys`` lists the keys
ever used, for `slots_in_use`.
"""

from __future__ import annotations

from qm_store_redis.scripts import Script

#: KEYS: the key's slot set. ARGV: holder, limit, now, expires_at. 1 if taken.
ACQUIRE = Script(
    "slot_acquire",
    r"""
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
  return 1
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
return 1
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


def slot_key(prefix: str, key: str) -> str:
    return f"{prefix}:slot:{{{key}}}"


def index_key(prefix: str) -> str:
    return f"{prefix}:slotkeys"
