"""`RedisStore`'s 0.1.5 contract: records, memory and message histories by node."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from qm_store_redis import scripts
from qm_store_redis.base import RedisBase, redis_errors
from qm_store_redis.codec import as_dict, dumps, loads, text
from qm_store_redis.wire import Client
from quartermaster_engine.context.node_execution import NodeExecution
from quartermaster_engine.messaging.history import history_of
from quartermaster_engine.types import Message


class RedisLegacy(RedisBase):
    """The 0.1.5 store methods (records, memory, messages of a flow)."""

    @redis_errors
    async def save_node_execution(
        self, flow_id: UUID, node_id: UUID, execution: NodeExecution
    ) -> None:
        keys = self._keys.flow(flow_id)
        data = dumps(execution.to_dict(), f"the record of node {node_id}")
        await self._eval(
            self._clients.get(),
            scripts.SAVE_RECORD,
            (keys[2], keys[3], keys[7]),
            (data, str(node_id)),
        )

    @redis_errors
    async def get_node_execution(self, flow_id: UUID, node_id: UUID) -> NodeExecution | None:
        found = await self._latest(self._clients.get(), flow_id, [str(node_id)])
        return found.get(node_id)

    @redis_errors
    async def get_all_node_executions(self, flow_id: UUID) -> dict[UUID, NodeExecution]:
        return await self._latest(self._clients.get(), flow_id, [])

    async def _latest(
        self, client: Client, flow_id: UUID, node_ids: list[str]
    ) -> dict[UUID, NodeExecution]:
        keys = self._keys.flow(flow_id)
        flat = await self._eval(client, scripts.LATEST_RECORDS, (keys[2], keys[3]), node_ids)
        return {
            UUID(text(flat[i])): NodeExecution.from_dict(loads(flat[i + 1]))
            for i in range(0, len(flat), 2)
        }

    @redis_errors
    async def save_memory(self, flow_id: UUID, key: str, value: Any) -> None:
        data = dumps(value, f"memory value {key!r}")
        await self._clients.get().command("HSET", self._keys.flow(flow_id)[1], key, data)

    @redis_errors
    async def get_memory(self, flow_id: UUID, key: str) -> Any:
        data = await self._clients.get().command("HGET", self._keys.flow(flow_id)[1], key)
        return None if data is None else loads(data)

    @redis_errors
    async def get_all_memory(self, flow_id: UUID) -> dict[str, Any]:
        data = as_dict(await self._clients.get().command("HGETALL", self._keys.flow(flow_id)[1]))
        return {text(k): loads(v) for k, v in data.items()}

    @redis_errors
    async def delete_memory(self, flow_id: UUID, key: str) -> None:
        await self._clients.get().command("HDEL", self._keys.flow(flow_id)[1], key)

    @redis_errors
    async def save_messages(self, flow_id: UUID, node_id: UUID, messages: list[Message]) -> None:
        keys = self._keys.flow(flow_id)
        data = dumps([m.to_dict() for m in messages], f"the messages of node {node_id}")
        await self._eval(
            self._clients.get(), scripts.SAVE_MESSAGES, (keys[2], keys[7]), (str(node_id), data)
        )

    @redis_errors
    async def get_messages(self, flow_id: UUID, node_id: UUID) -> list[Message]:
        """The history set with `save_messages`, unless a record of the node was
        committed since; else the history its latest record ends (rebuilt from the
        records it continues)."""
        client = self._clients.get()
        keys = self._keys.flow(flow_id)
        node = str(node_id)
        explicit, latest_at = await self._eval(
            client, scripts.MESSAGES_STATE, (keys[7], keys[3]), (node,)
        )
        if explicit is not None:
            stamp, _, data = explicit.partition(b"\t")
            if latest_at is None or int(latest_at) < int(stamp):
                return [Message.from_dict(m) for m in loads(data)]
        latest = (await self._latest(client, flow_id, [node])).get(node_id)
        if latest is None:
            return []
        if not latest.history_parents:
            return list(latest.messages)
        records = [
            NodeExecution.from_dict(loads(r))
            for r in await client.command("LRANGE", keys[2], 0, -1)
        ]
        return history_of(records, node_id)

    async def append_message(self, flow_id: UUID, node_id: UUID, message: Message) -> None:
        history = await self.get_messages(flow_id, node_id)
        history.append(message)
        await self.save_messages(flow_id, node_id, history)
