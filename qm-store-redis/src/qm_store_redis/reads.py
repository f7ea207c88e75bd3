"""`RedisStore`'s reads of a flow: snapshots, changes since a version, the event log."""

from __future__ import annotations

from uuid import UUID

from qm_store_redis import scripts
from qm_store_redis.base import redis_errors
from qm_store_redis.codec import as_dict, flow_record, loads, parse_slot, text
from qm_store_redis.graphs import RedisGraphs
from quartermaster_engine.context.node_execution import NodeExecution
from quartermaster_engine.events import FlowEvent, event_from_dict
from quartermaster_engine.stores.changes import FlowChanges, change_from_dict, changes_after
from quartermaster_engine.stores.records import Activation, Delivery, FlowSnapshot


class RedisReads(RedisGraphs):
    """Consistent reads of one flow (one script over its slot each)."""

    @redis_errors
    async def read_events(
        self, flow_id: UUID, after: int = 0, limit: int | None = None
    ) -> list[FlowEvent]:
        """The logged events numbered above ``after``: the log holds event ``n`` at
        index ``n - 1`` (numbers count from 1 without gaps)."""
        stop = -1 if limit is None else after + limit - 1
        rows = await self._clients.get().command("LRANGE", self._keys.flow(flow_id)[8], after, stop)
        events = [event_from_dict(loads(row)) for row in rows]
        return [e for e in events if e.seq > after]

    @redis_errors
    async def load_flow(self, flow_id: UUID, *, records_after: int = 0) -> FlowSnapshot | None:
        client = self._clients.get()
        # One script over one slot: a consistent snapshot, also on Cluster.
        keys = self._keys.flow(flow_id)[:7]
        flat, memory, records, queued, slots, exits, count = await self._eval(
            client, scripts.LOAD_FLOW, keys, (records_after,)
        )
        fields = as_dict(flat)
        if not fields:
            return None
        graph = await self._graph(client, text(fields[b"graph"]), flow_id)
        ordered = sorted((v.split(b"\t", 1) for v in queued), key=lambda p: int(p[0]))
        deliveries: list[Delivery] = []
        for field, value in as_dict(slots).items():
            deliveries.extend(parse_slot(field, value))
        deliveries.sort(key=lambda d: d.slot)
        loop_exits = []
        for member in exits:
            header, _, edge = text(member).partition(" ")
            loop_exits.append((UUID(header), UUID(edge)))
        return FlowSnapshot(
            flow=flow_record(fields, flow_id, graph),
            memory={text(k): loads(v) for k, v in as_dict(memory).items()},
            records=[NodeExecution.from_dict(loads(r)) for r in records],
            pending=[Activation.from_dict(loads(p[1])) for p in ordered],
            deliveries=deliveries,
            loop_exits=sorted(loop_exits, key=str),
            record_count=int(count),
        )

    @redis_errors
    async def read_changes(
        self, flow_id: UUID, after: int, *, records_after: int = 0
    ) -> FlowChanges | None:
        """What changed since version ``after`` (the `ReadsChanges` ability): one
        script over the flow's slot."""
        client = self._clients.get()
        keys = self._keys.flow(flow_id)
        reply = await self._eval(
            client, scripts.READ_CHANGES, (keys[0], keys[2], keys[9]), (after, records_after)
        )
        if not reply:
            return None
        flat, records, count, entries = reply
        fields = as_dict(flat)
        flow = flow_record(
            fields, flow_id, await self._graph(client, text(fields[b"graph"]), flow_id)
        )
        kept = []
        for entry in entries:
            version, _, data = entry.partition(b"\t")
            kept.append((int(version), change_from_dict(loads(data))))
        return FlowChanges(
            flow=flow,
            records=[NodeExecution.from_dict(loads(r)) for r in records],
            record_count=int(count),
            commits=changes_after(kept, after, flow.version),
        )
