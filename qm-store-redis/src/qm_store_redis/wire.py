"""Commands below redis-py's command layer: packing and the hot-path connection.

redis-py spends more time packing a command of twenty arguments, taking a
connection from its pool and arming a socket timeout (a task per send) than
the server spends running the command. Commits are the engine's hot path, so
they are packed here (a flow's keys once) and sent on a connection the loop
keeps for itself, under one ``asyncio.timeout``; replies and error replies
are parsed by redis-py as usual.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

#: A kept connection idle longer than this is replaced before use: the server
#: may have closed it meanwhile (a restart), and a command sent on it would
#: fail although the server is back.
_IDLE_SECONDS = 2.0


def pack_items(items: Iterable[str | bytes | int | float]) -> bytes:
    """RESP bulk strings of ``items`` (no array header)."""
    out: list[bytes] = []
    for item in items:
        kind = type(item)
        if kind is str:
            data = cast(str, item).encode()
        elif kind is bytes:
            data = cast(bytes, item)
        else:
            data = repr(item).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


def pack_command(count: int, *parts: bytes) -> bytes:
    """A RESP command of ``count`` arguments from already packed pieces."""
    return b"*%d\r\n%b" % (count, b"".join(parts))


Arg = str | bytes | int | float


class Client(Protocol):
    """What the store needs from the client of one event loop."""

    #: True for Redis Cluster: commands go through redis-py's cluster routing.
    cluster: bool

    async def command(self, *args: Arg) -> Any:
        """One command; its RESP2 reply (hash replies may come as dicts)."""
        ...

    async def batch(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        """Several independent commands in one round trip (per node); their replies."""
        ...

    async def aclose(self) -> None: ...


class LoopClient:
    """The redis.asyncio client of one event loop, plus the connection it keeps
    for packed commands. Only its own loop uses it."""

    __slots__ = ("_busy", "_conn", "_last", "redis", "timeout")

    cluster = False

    def __init__(self, redis: Redis, timeout: float) -> None:
        self.redis = redis
        self.timeout = timeout
        self._conn: AbstractConnection | None = None
        self._busy = False
        self._last = 0.0

    async def send(self, packed: bytes, replies: int = 1) -> Any:
        """Send packed commands and return the reply (a list of ``replies`` replies
        when more than one), RESP2 and unshaped.

        Error replies raise as redis-py's exceptions; a connection that fails or
        is interrupted mid-command is dropped, never reused with a reply pending.
        """
        if self._busy:  # another task of this loop is mid-command: use the pool
            return await self._send_pooled(packed, replies)
        self._busy = True
        try:
            conn = self._conn
            now = time.monotonic()
            if conn is None or now - self._last > _IDLE_SECONDS:
                if conn is not None:
                    await conn.disconnect(nowait=True)
                conn = self._conn = self._new_connection()
            self._last = now
            try:
                async with asyncio.timeout(self.timeout):
                    await conn.send_packed_command(packed, check_health=False)
                    if replies == 1:
                        return await conn.read_response()
                    return [await conn.read_response() for _ in range(replies)]
            except ResponseError:
                if replies > 1:  # later replies are still unread
                    await conn.disconnect(nowait=True)
                raise
            except TimeoutError:
                await conn.disconnect(nowait=True)
                raise RedisTimeoutError(f"no reply within {self.timeout:g} s") from None
            except BaseException:
                await conn.disconnect(nowait=True)
                raise
        finally:
            self._busy = False

    def _new_connection(self) -> AbstractConnection:
        pool = self.redis.connection_pool
        kwargs = dict(pool.connection_kwargs)
        # The whole exchange runs under asyncio.timeout instead: no task per send.
        kwargs["socket_timeout"] = None
        conn: AbstractConnection = pool.connection_class(**kwargs)
        return conn

    async def _send_pooled(self, packed: bytes, replies: int) -> Any:
        pool = self.redis.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await conn.send_packed_command(packed, check_health=False)
            if replies == 1:
                return await conn.read_response()
            return [await conn.read_response() for _ in range(replies)]
        except BaseException as exc:
            if replies > 1 or not isinstance(exc, ResponseError):
                await conn.disconnect(nowait=True)
            raise
        finally:
            await pool.release(conn)

    async def command(self, *args: Arg) -> Any:
        """One command; its reply as Redis sent it (RESP2, bytes), without redis-py's
        per-command reshaping (which differs between redis-py versions)."""
        return await self.send(pack_command(len(args), pack_items(args)))

    async def batch(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        if not commands:
            return []
        packed = b"".join(pack_command(len(c), pack_items(c)) for c in commands)
        replies = await self.send(packed, len(commands))
        return [replies] if len(commands) == 1 else list(replies)

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.disconnect()
        await self.redis.aclose()


class ClusterLoopClient:
    """The redis.asyncio cluster client of one event loop: every command is routed
    by its keys to the node owning their slot (a flow's keys share one)."""

    __slots__ = ("redis",)

    cluster = True

    def __init__(self, redis: RedisCluster) -> None:
        self.redis = redis

    async def command(self, *args: Arg) -> Any:
        return await self.redis.execute_command(*args)

    async def batch(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        if not commands:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute())

    async def aclose(self) -> None:
        await self.redis.aclose()
