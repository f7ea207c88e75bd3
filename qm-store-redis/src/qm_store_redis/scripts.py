"""The Lua scripts that make multi-key updates atomic.

Each script touches the keys of one flow (or of one graph, or one agent): one
hash tag, so one Cluster slot. Scripts are sent with EVALSHA and fall back to
EVAL when the server does not know them yet (a restart, SCRIPT FLUSH).
"""

from __future__ import annotations

import hashlib


class Script:
    """A Lua script and its SHA1, as Redis computes it."""

    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


#: A fence check shared by the scripts that write under a lease: returns nil
#: when the write may go on, else the refusal {code, status, epoch, owner}:
#: code 0 no flow, -1 the flow has ended, -2 the epoch is stale.
_FENCE = r"""
local function fence(flow, epoch, ending)
  local st = redis.call('HMGET', flow, 'status', 'lease_epoch', 'lease_owner')
  if not st[1] then return {0, '', '', ''} end
  if ending and (st[1] == 'completed' or st[1] == 'failed' or st[1] == 'stopped') then
    return {-1, st[1], st[2] or '0', st[3] or ''}
  end
  if epoch ~= '' and epoch ~= (st[2] or '0') then
    return {-2, st[1], st[2] or '0', st[3] or ''}
  end
  return nil
end
"""

#: KEYS: the flow's first seven keys (keys.FLOW_PARTS order), then its events
#: list and its changes list. ARGV: now, epoch or '', done field or '', done
#: attempt or '', answered field or '', record JSON or '', record node id, then
#: counted sections: memory (key, JSON), deliveries (slot field, edge, line),
#: closed (slot field), enqueue (field, "sort key<TAB>JSON"), loop resets
#: (header), loop exits (member), events (seq, JSON); then the change JSON to
#: keep ('' for none) and, with one, how many changes the list keeps (entries
#: "version<TAB>JSON", `ReadsChanges`). Returns {1} when applied; a fence refusal (see
#: _FENCE); {-3} when done is not pending with that attempt; {-4} when the
#: answered activation is not waiting. Nothing is written unless applied.
_COMMIT_BODY = r"""
local flow = KEYS[1]
local refused = fence(flow, ARGV[2], true)
if refused then return refused end
if ARGV[3] ~= '' then
  local cur = redis.call('HGET', KEYS[5], ARGV[3])
  if not cur then return {-3} end
  if ARGV[4] ~= '' then
    local act = cjson.decode(string.sub(cur, string.find(cur, '\t', 1, true) + 1))
    if tostring(act['attempt']) ~= ARGV[4] then return {-3} end
  end
end
if ARGV[5] ~= '' then
  local cur = redis.call('HGET', KEYS[5], ARGV[5])
  if not cur then return {-4} end
  local act = cjson.decode(string.sub(cur, string.find(cur, '\t', 1, true) + 1))
  if not act['waiting'] then return {-4} end
end
redis.call('HSET', flow, 'updated_at', ARGV[1])
redis.call('HINCRBY', flow, 'version', 1)
if ARGV[3] ~= '' then redis.call('HDEL', KEYS[5], ARGV[3]) end
if ARGV[6] ~= '' then
  local len = redis.call('RPUSH', KEYS[3], ARGV[6])
  redis.call('HSET', KEYS[4], ARGV[7], len - 1)
end
local i = 8
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]); i = i + 2
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local slot, edge, line = ARGV[i], ARGV[i + 1], ARGV[i + 2]; i = i + 3
  local got = redis.call('HGET', KEYS[6], slot)
  if not got then
    redis.call('HSET', KEYS[6], slot, line)
  elseif not string.find(got, '|' .. edge .. ' ', 1, true) then
    -- a delivery is recorded by its edge: a repeated one is not counted twice
    redis.call('HSET', KEYS[6], slot, got .. line)
  end
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('HDEL', KEYS[6], ARGV[i]); i = i + 1
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 1]); i = i + 2
end
-- loop marks: resets (counted, then the headers) apply after the exits
local nresets = tonumber(ARGV[i]); local resets = i + 1; i = i + 1 + nresets
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('SADD', KEYS[7], ARGV[i]); i = i + 1
end
if nresets > 0 then
  local members = redis.call('SMEMBERS', KEYS[7])
  for r = resets, resets + nresets - 1 do
    local head = ARGV[r] .. ' '
    for _, member in ipairs(members) do
      if string.sub(member, 1, #head) == head then redis.call('SREM', KEYS[7], member) end
    end
  end
end
n = tonumber(ARGV[i]); i = i + 1
if n > 0 then
  local last = '0'
  for _ = 1, n do
    last = ARGV[i]
    redis.call('RPUSH', KEYS[8], ARGV[i + 1]); i = i + 2
  end
  redis.call('HSET', flow, 'event_seq', last)
end
if ARGV[i] ~= '' then
  local version = redis.call('HGET', flow, 'version')
  redis.call('RPUSH', KEYS[9], version .. '\t' .. ARGV[i])
  redis.call('LTRIM', KEYS[9], -tonumber(ARGV[i + 1]), -1)
  i = i + 2
else
  i = i + 1
end
"""

COMMIT = Script("commit", _FENCE + _COMMIT_BODY + "return {1}\n")

#: COMMIT with usage counts (`KeepsKeyUsage`, `LimitsTokens`) applied with it.
#: It also gives up the slots of `Commit.release_slots` (`ReleasesSlotsInCommit`).
#: KEYS: COMMIT's nine, then the index of usage keys, then one key per count:
#: each usage count's hash, then each token count's sorted set, then each slot's
#: set. ARGV: COMMIT's, then the usage counts (key name, node runs, tokens,
#: cost), then the token counts (drop at or before, at, member, expiry in ms),
#: then the slots' holders (each list after its length). Cluster-unsafe (the
#: counts' keys are not the flow's): the store uses it only off Redis Cluster.
COMMIT_COUNTED = Script(
    "commit_counted",
    _FENCE
    + _COMMIT_BODY
    + r"""
local k = 11
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('HINCRBY', KEYS[k], 'node_runs', ARGV[i + 1])
  redis.call('HINCRBY', KEYS[k], 'tokens', ARGV[i + 2])
  redis.call('HINCRBYFLOAT', KEYS[k], 'cost', ARGV[i + 3])
  redis.call('SADD', KEYS[10], ARGV[i]); i = i + 4; k = k + 1
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', ARGV[i])
  redis.call('ZADD', KEYS[k], ARGV[i + 1], ARGV[i + 2])
  redis.call('PEXPIRE', KEYS[k], ARGV[i + 3]); i = i + 4; k = k + 1
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('ZREM', KEYS[k], ARGV[i]); i = i + 1; k = k + 1
end
return {1}
""",
)

#: KEYS: flow key. ARGV: owner, now, ttl (seconds), take-over epoch or ''.
#: Returns {1, epoch, expires} with the new lease, {0} when there is no flow,
#: or {-5, owner, epoch, expires} while another owner's lease is live.
ACQUIRE_LEASE = Script(
    "acquire_lease",
    r"""
local flow = KEYS[1]
local st = redis.call('HMGET', flow, 'status', 'lease_owner', 'lease_epoch', 'lease_expires')
if not st[1] then return {0} end
local owner, epoch, expires = st[2] or '', tonumber(st[3] or '0'), st[4] or '0'
local now = tonumber(ARGV[2])
if owner ~= '' and tonumber(expires) > now and ARGV[4] ~= tostring(epoch) then
  return {-5, owner, tostring(epoch), expires}
end
local new_expires = tostring(now + tonumber(ARGV[3]))
redis.call('HSET', flow, 'lease_owner', ARGV[1], 'lease_epoch', epoch + 1,
  'lease_expires', new_expires)
return {1, tostring(epoch + 1), new_expires}
""",
)

#: KEYS: flow key. ARGV: epoch, now + ttl. Returns {1} when renewed, else a
#: fence refusal.
RENEW_LEASE = Script(
    "renew_lease",
    _FENCE
    + r"""
local refused = fence(KEYS[1], ARGV[1], false)
if refused then return refused end
redis.call('HSET', KEYS[1], 'lease_expires', ARGV[2])
return {1}
""",
)

#: KEYS: flow key. ARGV: epoch. Ends the lease if it is still that epoch.
RELEASE_LEASE = Script(
    "release_lease",
    r"""
if redis.call('HGET', KEYS[1], 'lease_epoch') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'lease_owner', '', 'lease_expires', '0')
end
return 1
""",
)

#: KEYS: flow key. ARGV: field, value, ... Returns 0 if the flow exists.
CREATE_FLOW = Script(
    "create_flow",
    r"""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
""",
)

#: KEYS: the flow's keys. ARGV: status, updated_at, error, final_output,
#: event_seq, '1' if terminal, TTL in ms ('0': keep), epoch or '', '1' to
#: release the lease, then event JSONs. Returns {1, the flow's graph hash}, or a
#: fence refusal (see _FENCE; {0, ...} when the flow does not exist).
UPDATE_FLOW = Script(
    "update_flow",
    _FENCE
    + r"""
local flow = KEYS[1]
if redis.call('EXISTS', flow) == 0 then return {0, '', '', ''} end
if ARGV[8] ~= '' then
  local refused = fence(flow, ARGV[8], true)
  if refused then return refused end
end
redis.call('HSET', flow, 'status', ARGV[1], 'updated_at', ARGV[2], 'error', ARGV[3],
  'final_output', ARGV[4], 'event_seq', ARGV[5])
if ARGV[9] == '1' then
  redis.call('HSET', flow, 'lease_owner', '', 'lease_expires', '0')
end
for k = 10, #ARGV do redis.call('RPUSH', KEYS[9], ARGV[k]) end
if ARGV[6] == '1' then
  redis.call('DEL', KEYS[5], KEYS[6], KEYS[7], KEYS[10])
  local ttl = tonumber(ARGV[7])
  if ttl > 0 then
    for k = 1, #KEYS do redis.call('PEXPIRE', KEYS[k], ttl) end
  end
elseif redis.call('PTTL', flow) > 0 then
  for k = 1, #KEYS do redis.call('PERSIST', KEYS[k]) end
end
return {1, redis.call('HGET', flow, 'graph') or ''}
""",
)

#: KEYS: the flow's keys. Returns {keys deleted, graph hash or ''}.
DELETE_FLOW = Script(
    "delete_flow",
    r"""
local graph = redis.call('HGET', KEYS[1], 'graph') or ''
return {redis.call('DEL', unpack(KEYS)), graph}
""",
)

#: KEYS: graph key, its reference set. ARGV: graph JSON or '', flow id, score
#: (ms since the epoch when the flow's keys expire, or 'inf'), now in ms,
#: 'add' or 'remove'. The graph and its references expire with the last flow
#: using it. Returns 0 when the graph is missing and no JSON was given.
GRAPH_REF = Script(
    "graph_ref",
    r"""
local graph, refs = KEYS[1], KEYS[2]
if ARGV[5] == 'remove' then
  redis.call('ZREM', refs, ARGV[2])
else
  if redis.call('EXISTS', graph) == 0 then
    if ARGV[1] == '' then return 0 end
    redis.call('SET', graph, ARGV[1])
  end
  redis.call('ZADD', refs, ARGV[3], ARGV[2])
end
redis.call('ZREMRANGEBYSCORE', refs, '-inf', '(' .. ARGV[4])
local top = redis.call('ZRANGE', refs, -1, -1, 'WITHSCORES')
if #top == 0 then
  redis.call('DEL', graph, refs)
elseif top[2] == 'inf' then
  redis.call('PERSIST', graph); redis.call('PERSIST', refs)
else
  local at = math.floor(tonumber(top[2]))
  redis.call('PEXPIREAT', graph, at); redis.call('PEXPIREAT', refs, at)
end
return 1
""",
)

#: KEYS: recs, latest, msgs. ARGV: record JSON, node id. A 0.1.5-contract
#: save: it keeps a history set by save_messages (re-stamped past this record).
SAVE_RECORD = Script(
    "save_record",
    r"""
local len = redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[2], len - 1)
local msgs = redis.call('HGET', KEYS[3], ARGV[2])
if msgs then
  redis.call('HSET', KEYS[3], ARGV[2], len .. string.sub(msgs, string.find(msgs, '\t', 1, true)))
end
return len
""",
)

#: KEYS: recs, msgs. ARGV: node id, history JSON. Stamped with the number of
#: records so far: a record of the node committed later supersedes it.
SAVE_MESSAGES = Script(
    "save_messages",
    r"""
redis.call('HSET', KEYS[2], ARGV[1], redis.call('LLEN', KEYS[1]) .. '\t' .. ARGV[2])
return 1
""",
)

#: KEYS: recs, latest. ARGV: node ids (none: every node).
#: Returns {node id, record JSON, ...} for the nodes that have a record.
LATEST_RECORDS = Script(
    "latest_records",
    r"""
local out = {}
local ids = ARGV
if #ids == 0 then ids = redis.call('HKEYS', KEYS[2]) end
for _, id in ipairs(ids) do
  local at = redis.call('HGET', KEYS[2], id)
  if at then
    local rec = redis.call('LINDEX', KEYS[1], tonumber(at))
    if rec then out[#out + 1] = id; out[#out + 1] = rec end
  end
end
return out
""",
)

#: KEYS: msgs, latest. ARGV: node id. {its saved history or nil, its latest record's index or nil}.
MESSAGES_STATE = Script(
    "messages_state",
    r"""
return {redis.call('HGET', KEYS[1], ARGV[1]), redis.call('HGET', KEYS[2], ARGV[1])}
""",
)

#: KEYS: the flow's first seven keys. ARGV: how many records to skip. Returns
#: {flow hash, memory hash, records after those, pending values, joins hash,
#: loop members, record count}: everything load_flow needs, read at one instant.
LOAD_FLOW = Script(
    "load_flow",
    r"""
return {
  redis.call('HGETALL', KEYS[1]),
  redis.call('HGETALL', KEYS[2]),
  redis.call('LRANGE', KEYS[3], tonumber(ARGV[1]), -1),
  redis.call('HVALS', KEYS[5]),
  redis.call('HGETALL', KEYS[6]),
  redis.call('SMEMBERS', KEYS[7]),
  redis.call('LLEN', KEYS[3]),
}
""",
)

#: KEYS: the flow's hash, records list and changes list. ARGV: the version read
#: before, how many records to skip. Returns {} for no flow, else {flow hash,
#: records after those, record count, kept changes after that version (oldest
#: first)}, read at one instant; only the flow hash and the record count while
#: the version is unchanged (`ReadsChanges`).
READ_CHANGES = Script(
    "read_changes",
    r"""
local flow = redis.call('HGETALL', KEYS[1])
if #flow == 0 then return {} end
local after = tonumber(ARGV[1])
local count = redis.call('LLEN', KEYS[2])
if tonumber(redis.call('HGET', KEYS[1], 'version') or '0') == after then
  return {flow, {}, count, {}}
end
local out = {}
local n = redis.call('LLEN', KEYS[3])
for k = -1, -n, -1 do
  local entry = redis.call('LINDEX', KEYS[3], k)
  if tonumber(string.sub(entry, 1, string.find(entry, '\t', 1, true) - 1)) <= after then
    break
  end
  table.insert(out, 1, entry)
end
return {flow, redis.call('LRANGE', KEYS[2], tonumber(ARGV[2]), -1), count, out}
""",
)

#: KEYS: an agent's memory hash. ARGV: key, value, now (ISO time).
#: Changes the value (creating the entry when absent), keeping created_at.
MEMORY_UPDATE = Script(
    "memory_update",
    r"""
local got = redis.call('HGET', KEYS[1], ARGV[1])
local entry
if got then
  entry = cjson.decode(got)
else
  entry = {created_at = ARGV[3], metadata = {}}
end
entry.value = ARGV[2]
entry.updated_at = ARGV[3]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(entry))
return 1
""",
)
