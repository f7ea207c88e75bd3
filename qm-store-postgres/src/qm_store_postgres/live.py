"""Live messages of a flow (tokens of nodes running on workers) over ``LISTEN``/``NOTIFY``.

Each flow has its own channel, ``qm_live_<flow id in hex>``. PostgreSQL keeps
no notification for a session that was not listening when it was sent, and
delivers those of one session in the order they were committed, which is what
live tokens need (a publisher sends them one after the other). A payload is
at most 8,000 bytes: a token is far smaller.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

import asyncpg

logger = logging.getLogger("qm_store_postgres")

#: ``SELECT pg_notify(channel, payload)``: NOTIFY takes no bind parameters.
NOTIFY_SQL = "SELECT pg_notify($1, $2)"


def channel_of(flow_id: UUID) -> str:
    """The flow's notification channel."""
    return f"qm_live_{flow_id.hex}"


class PostgresLiveSubscription:
    """One flow's channel, listened to on a connection of its own."""

    def __init__(self, connection: asyncpg.Connection, channel: str) -> None:
        self._connection = connection
        self._channel = channel
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._closed = False

    @classmethod
    async def open(cls, connection: asyncpg.Connection, flow_id: UUID) -> PostgresLiveSubscription:
        """``LISTEN`` to the flow's channel on ``connection`` (closed with the subscription)."""
        subscription = cls(connection, channel_of(flow_id))
        try:
            await connection.add_listener(subscription._channel, subscription._heard)
        except BaseException:
            await connection.close()
            raise
        return subscription

    def _heard(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self._queue.put_nowait(payload.encode())

    async def next(self, within: float) -> bytes | None:
        """The next message within ``within`` seconds, or None."""
        if within <= 0:
            return None if self._queue.empty() else self._queue.get_nowait()
        try:
            return await asyncio.wait_for(self._queue.get(), within)
        except TimeoutError:
            return None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._connection.remove_listener(self._channel, self._heard)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            logger.debug("closing a live subscription: %s", exc)
        finally:
            await self._connection.close()
