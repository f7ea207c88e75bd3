"""`RedisStore`'s flows: create, get, update, move, list, delete, prune."""

from __future__ import annotations

import time
from datetime import timedelta
from uuid import UUID

from qm_store_redis import moves, scripts, timers
from qm_store_redis.base import redis_errors
from qm_store_redis.codec import (
    as_dict,
    dumps,
    event_json,
    flow_fields,
    flow_record,
    graph_json,
    text,
)
from qm_store_redis.graphs import RedisGraphs
from qm_store_redis.wire import Client
from quartermaster_engine.stores.base import FlowExistsError
from quartermaster_engine.stores.records import FlowMove, FlowRecord, FlowStatus, FlowUpdate

#: How long an index entry may point at no flow before listing or pruning drops
#: it: a flow is indexed just before it is written, so a young dangling entry may
#: be a flow being created right now.
_DANGLING_GRACE = 60.0


class RedisFlows(RedisGraphs):
    """Flow records and their index (`<prefix>:flows`, by last update)."""

    @redis_errors
    async def create_flow(self, record: FlowRecord) -> None:
        digest, graph_data = graph_json(record.graph)
        client = self._clients.get()
        fid = str(record.flow_id)
        flow_key = self._keys.flow(record.flow_id)[0]
        # Index first: an entry whose flow is missing is ignored (and dropped later),
        # while a flow missing from the index would never be listed or pruned.
        await client.command("ZADD", self._keys.flows, "NX", record.updated_at, fid)
        await self._ref_graph(client, digest, graph_data, fid, "inf")
        created = await self._eval(
            client, scripts.CREATE_FLOW, (flow_key,), flow_fields(record, digest)
        )
        if not created:
            # Give back our reference unless the stored flow runs the same graph.
            existing = await client.command("HGET", flow_key, "graph")
            if existing is None or text(existing) != digest:
                await self._ref_graph(client, digest, "", fid, "", remove=True)
            else:
                ttl = await client.command("PTTL", flow_key)
                score = "inf" if ttl < 0 else str(int(time.time() * 1000) + ttl)
                await self._ref_graph(client, digest, "", fid, score)
            raise FlowExistsError(f"flow {record.flow_id} already exists in {self.describe()}")

    @redis_errors
    async def get_flow(self, flow_id: UUID) -> FlowRecord | None:
        client = self._clients.get()
        fields = as_dict(await client.command("HGETALL", self._keys.flow(flow_id)[0]))
        if not fields:
            return None
        return flow_record(
            fields, flow_id, await self._graph(client, text(fields[b"graph"]), flow_id)
        )

    @redis_errors
    async def update_flow(self, flow_id: UUID, update: FlowUpdate) -> None:
        client = self._clients.get()
        terminal = update.status.is_terminal
        if update.status is FlowStatus.PAUSED:
            await timers.index_if_timed(client, self._keys, flow_id)  # before: a hint
        reply = await self._eval(
            client,
            scripts.UPDATE_FLOW,
            self._keys.flow(flow_id),
            (
                update.status.value,
                repr(update.updated_at),
                dumps(update.error, "the flow error"),
                dumps(update.final_output, "the final output"),
                update.event_seq,
                "1" if terminal else "0",
                self._ttl_ms if terminal else 0,
                "" if update.epoch is None else update.epoch,
                "1" if update.release_lease else "",
                *(event_json(event) for event in update.events),
            ),
        )
        if reply[0] != 1:
            raise self._refusal(flow_id, reply, epoch=update.epoch)
        digest = reply[1]
        await client.command("ZADD", self._keys.flows, "XX", update.updated_at, str(flow_id))
        if terminal and self._ttl_ms and digest:
            expires = str(int(time.time() * 1000) + self._ttl_ms)
            await self._ref_graph(client, text(digest), "", str(flow_id), expires)

    @redis_errors
    async def move_flow(self, flow_id: UUID, move: FlowMove) -> None:
        """`MovesFlows`: point the flow at ``move.graph`` and log the events (see
        `qm_store_redis.moves`); the flow's graph references follow."""
        digest, graph_data = graph_json(move.graph)
        client = self._clients.get()
        fid = str(flow_id)
        # A failed flow's keys may expire (ttl_seconds): its reference expires with them.
        ttl = await client.command("PTTL", self._keys.flow(flow_id)[0])
        score = "inf" if ttl < 0 else str(int(time.time() * 1000) + ttl)
        await self._ref_graph(client, digest, graph_data, fid, score)
        try:
            old = await moves.move(client, self._keys, flow_id, move, digest, self._eval)
        except BaseException:
            current = await client.command("HGET", self._keys.flow(flow_id)[0], "graph")
            if current is None or text(current) != digest:
                await self._ref_graph(client, digest, "", fid, "", remove=True)
            raise
        if old and old != digest:
            await self._ref_graph(client, old, "", fid, "", remove=True)

    async def _flow_fields(
        self, client: Client, ids: list[bytes], fields: tuple[str, ...]
    ) -> list[list[bytes | None]]:
        return await client.batch(
            [("HMGET", self._keys.flow(UUID(text(fid)))[0], *fields) for fid in ids]
        )

    async def _drop_dangling(self, client: Client, entries: list[tuple[bytes, float]]) -> None:
        """Remove index entries whose flow is gone (expired by TTL, or a crash
        between indexing and creating), once they are old enough."""
        limit = time.time() - _DANGLING_GRACE
        old = [fid for fid, score in entries if score < limit]
        if old:
            await client.command("ZREM", self._keys.flows, *old)

    @redis_errors
    async def list_flows(
        self, *, status: FlowStatus | None = None, limit: int | None = None
    ) -> list[FlowRecord]:
        """Flows, most recently updated first. Reads the metadata of every indexed
        flow: meant for operators and cleanup, not for a hot path."""
        client = self._clients.get()
        entries = _pairs(await client.command("ZRANGE", self._keys.flows, 0, -1, "WITHSCORES"))
        ids = [fid for fid, _ in entries]
        replies = await client.batch(
            [("HGETALL", self._keys.flow(UUID(text(fid)))[0]) for fid in ids]
        )
        metas = [as_dict(reply) for reply in replies]
        found: list[tuple[UUID, dict[bytes, bytes]]] = []
        dangling: list[tuple[bytes, float]] = []
        for (fid, score), fields in zip(entries, metas):
            if not fields:
                dangling.append((fid, score))
            elif status is None or text(fields[b"status"]) == status.value:
                found.append((UUID(text(fid)), fields))
        await self._drop_dangling(client, dangling)
        found.sort(key=lambda item: float(item[1][b"updated_at"]), reverse=True)
        if limit is not None:
            found = found[:limit]
        out = []
        for flow_id, fields in found:
            graph = await self._graph(client, text(fields[b"graph"]), flow_id)
            out.append(flow_record(fields, flow_id, graph))
        return out

    @redis_errors
    async def delete_flow(self, flow_id: UUID) -> bool:
        client = self._clients.get()
        deleted, digest = await self._eval(
            client, scripts.DELETE_FLOW, self._keys.flow(flow_id), ()
        )
        if digest:
            await self._ref_graph(client, text(digest), "", str(flow_id), "", remove=True)
        await client.command("ZREM", self._keys.flows, str(flow_id))
        return bool(deleted)

    async def clear_flow(self, flow_id: UUID) -> None:
        """0.1.5's name for `delete_flow`."""
        await self.delete_flow(flow_id)

    @redis_errors
    async def prune(self, older_than: timedelta) -> int:
        """Delete ended flows last updated before ``now - older_than``. An index
        score is never above its flow's real ``updated_at``, so candidates come
        from a range query on the index and are checked against the flow."""
        client = self._clients.get()
        cutoff = time.time() - older_than.total_seconds()
        entries = _pairs(
            await client.command(
                "ZRANGEBYSCORE", self._keys.flows, "-inf", f"({cutoff!r}", "WITHSCORES"
            )
        )
        metas = await self._flow_fields(client, [f for f, _ in entries], ("status", "updated_at"))
        count = 0
        dangling: list[tuple[bytes, float]] = []
        for (fid, score), (status, updated) in zip(entries, metas):
            if status is None or updated is None:
                dangling.append((fid, score))
            elif FlowStatus(text(status)).is_terminal and float(updated) < cutoff:
                count += await self.delete_flow(UUID(text(fid)))
        await self._drop_dangling(client, dangling)
        return count


def _pairs(flat: list[bytes]) -> list[tuple[bytes, float]]:
    """(member, score) pairs of a flat ``WITHSCORES`` reply."""
    return [(flat[i], float(flat[i + 1])) for i in range(0, len(flat), 2)]
