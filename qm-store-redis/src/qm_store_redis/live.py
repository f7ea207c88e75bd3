"""Live messages of a flow (tokens of nodes running on workers) over Redis pub/sub.

Each flow has its own channel, ``<prefix>:{<flow id>}:live``. Pub/sub keeps no
message: a subscriber gets what is published while it is subscribed, in the
order each publisher sent it, which is what live tokens need. On Redis Cluster
a plain ``PUBLISH`` reaches the subscribers of every node, so a subscription
on the node the URL names is enough.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from qm_store_redis.base import RedisBase, redis_errors

logger = logging.getLogger("qm_store_redis")


class RedisLiveSubscription:
    """One flow's channel, subscribed on a connection of its own."""

    def __init__(self, redis: Redis, pubsub: PubSub) -> None:
        self._redis = redis
        self._pubsub = pubsub
        self._closed = False
        self._broken = False

    @classmethod
    async def open(cls, url: str, channel: str, wait: float) -> RedisLiveSubscription:
        """Subscribe to ``channel`` of the server at ``url``."""
        redis = Redis.from_url(url, socket_connect_timeout=wait, protocol=2)
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(channel)
            # The subscription holds once the server confirmed it: wait for that reply.
            await pubsub.get_message(timeout=wait)
        except BaseException:
            await pubsub.aclose()
            await redis.aclose()
            raise
        return cls(redis, pubsub)

    async def next(self, within: float) -> bytes | None:
        """The next message within ``within`` seconds, or None. A lost connection
        ends the live messages (logged once), not the caller's reading: it then
        only waits ``within`` seconds."""
        if self._broken:
            await asyncio.sleep(within)
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            try:
                message: dict[str, Any] | None = await self._pubsub.get_message(
                    timeout=max(0.0, deadline - loop.time())
                )
            except RedisError as exc:
                self._broken = True
                logger.warning("live messages lost from here on: %s: %s", type(exc).__name__, exc)
                return None
            if message is not None and message.get("type") == "message":
                data = message["data"]
                return data if isinstance(data, bytes) else str(data).encode()
            if loop.time() >= deadline:
                return None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._pubsub.aclose()
        await self._redis.aclose()


class RedisLive(RedisBase):
    """Publish and subscribe to a flow's live channel (`qm_store_redis.live`)."""

    @redis_errors
    async def publish_live(self, flow_id: UUID, message: bytes) -> None:
        """Publish ``message`` on the flow's channel (see `qm_store_redis.live`)."""
        await self._clients.get().command("PUBLISH", self._keys.live(flow_id), message)

    @redis_errors
    async def subscribe_live(self, flow_id: UUID) -> RedisLiveSubscription:
        """Subscribe to the flow's channel on a connection of its own."""
        return await RedisLiveSubscription.open(
            self.url, self._keys.live(flow_id), self.timeout_seconds
        )
