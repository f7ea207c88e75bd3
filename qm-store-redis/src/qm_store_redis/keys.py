"""Where the store keeps things: the key layout.

Every key starts with the configured prefix. All keys of one flow carry the
hash tag ``{<flow id>}``, so on Redis Cluster a flow lives in one slot and
every multi-key script of a flow runs on one node. Keys shared by flows live
under their own tags and are never touched by the same script as a flow's, but
on a server that is no Cluster node, where the commit script also adds a
commit's usage counts (`scripts.COMMIT_COUNTED`)::

    <p>:{<flow>}:flow      hash   status, timestamps, input, error, output, graph hash
    <p>:{<flow>}:mem       hash   flow memory, key -> JSON value
    <p>:{<flow>}:recs      list   node records (JSON), in commit order
    <p>:{<flow>}:latest    hash   node id -> index in recs of its latest record
    <p>:{<flow>}:pending   hash   "node:visit" -> "sort key<TAB>activation JSON"
    <p>:{<flow>}:joins     hash   "node:slot" -> "|<edge> <node>:<visit>" (or "-") per delivery
    <p>:{<flow>}:loops     set    "<loop header> <exit edge>"
    <p>:{<flow>}:msgs      hash   node id -> "stamp<TAB>JSON history" set by save_messages
    <p>:{<flow>}:events    list   the event log (event JSON), in sequence order from 1
    <p>:{<flow>}:changes   list   "version<TAB>change JSON" of the last 256 commits that
                                  keep their frontier change (ReadsChanges)
    <p>:{<flow>}:live      channel live-only messages of the flow (tokens), pub/sub
    <p>:flows              zset   flow ids scored by updated_at (listing, pruning)
    <p>:timers             zset   paused flows' ids scored by their first timer (a hint)
    <p>:schedules          hash   schedule name -> "next tick<TAB>schedule JSON"
    <p>:graph:{<sha>}      string a graph's JSON, shared by every flow running it
    <p>:graph:{<sha>}:refs zset   flows using it, scored by when their keys expire
    <p>:agent:{<agent>}    hash   persistent memory of one agent, key -> JSON entry
"""

from __future__ import annotations

from uuid import UUID

from qm_store_redis.wire import pack_items

#: Suffixes of a flow's keys, in the order the scripts receive them as KEYS.
FLOW_PARTS = (
    "flow",
    "mem",
    "recs",
    "latest",
    "pending",
    "joins",
    "loops",
    "msgs",
    "events",
    "changes",
)
#: How many keys the commit script receives: the first seven, then events and changes.
COMMIT_KEYS = 9


class KeySpace:
    """Key names under one prefix. Flow key tuples are cached: they are built per commit."""

    __slots__ = ("_cache", "_packed", "flows", "prefix", "schedules", "timers")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.flows = f"{prefix}:flows"
        self.timers = f"{prefix}:timers"
        self.schedules = f"{prefix}:schedules"
        self._cache: dict[UUID, tuple[str, ...]] = {}
        self._packed: dict[UUID, bytes] = {}

    def flow(self, flow_id: UUID) -> tuple[str, ...]:
        """The flow's keys in `FLOW_PARTS` order."""
        keys = self._cache.get(flow_id)
        if keys is None:
            if len(self._cache) >= 1024:
                self._cache.clear()
            base = f"{self.prefix}:{{{flow_id}}}:"
            keys = self._cache[flow_id] = tuple(base + part for part in FLOW_PARTS)
        return keys

    def commit_keys(self, flow_id: UUID) -> bytes:
        """The commit script's KEYS, already in wire form (RESP bulk strings)."""
        packed = self._packed.get(flow_id)
        if packed is None:
            if len(self._packed) >= 1024:
                self._packed.clear()
            packed = self._packed[flow_id] = pack_items(self.commit_tuple(flow_id))
        return packed

    def commit_tuple(self, flow_id: UUID) -> tuple[str, ...]:
        """The commit script's KEYS: the flow's first seven keys, then its events and
        its kept changes."""
        keys = self.flow(flow_id)
        return (*keys[:7], keys[8], keys[9])

    def live(self, flow_id: UUID) -> str:
        """The flow's pub/sub channel of live messages."""
        return f"{self.prefix}:{{{flow_id}}}:live"

    def graph(self, digest: str) -> tuple[str, str]:
        """(graph JSON key, its reference set key)."""
        base = f"{self.prefix}:graph:{{{digest}}}"
        return base, base + ":refs"

    def agent(self, agent_id: UUID) -> str:
        return f"{self.prefix}:agent:{{{agent_id}}}"
