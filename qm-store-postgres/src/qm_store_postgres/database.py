"""How the store talks to the server: an asyncpg pool per event loop, the schema
check on first use, and asyncpg's errors turned into errors naming the server.

asyncpg connections belong to the loop that opened them, so each loop gets its
own pool (core's `PerLoop`), opened on first use. The schema is checked (created,
migrated, or refused as newer) once per process, before the first pool serves.

Commits of one flow are applied in the order they are made: a lock per flow and
loop (asyncio's locks are first come, first served) holds a commit until the
previous one of its flow has returned. Different flows commit in parallel on
the pool's connections.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from asyncpg import exceptions as pgerr

from qm_store_postgres import schema
from qm_store_postgres.errors import (
    PostgresStoreError,
    PostgresUnavailableError,
    SchemaVersionError,
    StoreOpenError,
)
from qm_store_postgres.settings import PostgresSettings
from quartermaster_engine.redaction import redact_text, redact_url
from quartermaster_engine.stores.base import StoreError
from quartermaster_engine.stores.loops import PerLoop
from quartermaster_engine.stores.servers import os_reason

T = TypeVar("T")

#: Flow locks kept per loop before idle ones are dropped.
_LOCKS_MAX = 1024

#: Errors meaning the server is out of reach or went away (SQLSTATE classes 08
#: and 57P0x arrive as these; OSError: refused, unreachable, unresolved).
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    pgerr.PostgresConnectionError,
    pgerr.ConnectionDoesNotExistError,
    pgerr.CannotConnectNowError,
    pgerr.AdminShutdownError,
    pgerr.CrashShutdownError,
    pgerr.InterfaceError,
)
#: Errors meaning these credentials or this database cannot be used.
_REFUSED: tuple[type[BaseException], ...] = (
    pgerr.InvalidPasswordError,
    pgerr.InvalidAuthorizationSpecificationError,
    pgerr.InvalidCatalogNameError,
    pgerr.InsufficientPrivilegeError,
)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The pool's reset hook. asyncpg still rolls back a transaction left open (a
    cancelled call) before calling it; beyond that the store leaves no session
    state behind (no cursor, listener or setting), so a released connection needs
    no reset query, which would be a second round trip per use."""


class LoopPool:
    """The asyncpg pool of one event loop, opened on first use, and its flow locks.

    Calls use a connection the loop keeps for itself while no other call of the
    loop is using it: taking one from the pool and giving it back costs a task
    and two loop iterations, more than encoding a commit. Concurrent calls take
    connections from the pool.
    """

    __slots__ = ("_open", "_opening", "busy", "kept", "locks", "pool")

    def __init__(self, open_pool: Callable[[], Awaitable[asyncpg.Pool]]) -> None:
        self._open = open_pool
        self._opening: asyncio.Lock | None = None
        self.pool: asyncpg.Pool | None = None
        self.locks: dict[UUID, asyncio.Lock] = {}
        #: The kept connection (taken from the pool) and whether a commit is using it.
        self.kept: asyncpg.Connection | None = None
        self.busy = False

    async def get(self) -> asyncpg.Pool:
        pool = self.pool
        if pool is not None:
            return pool
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self.pool is None:
                self.pool = await self._open()
            return self.pool

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """The kept connection if it is free, else one of the pool's."""
        pool = self.pool or await self.get()
        if self.busy:
            async with pool.acquire() as conn:
                yield conn
            return
        self.busy = True
        try:
            conn = self.kept
            if conn is None or conn.is_closed():
                if conn is not None:
                    await pool.release(conn)  # the pool replaces a closed one
                conn = self.kept = await pool.acquire()
            try:
                yield conn
            except BaseException:
                # Never reuse a connection whose exchange failed or was cut short.
                self.kept = None
                with contextlib.suppress(Exception):
                    await pool.release(conn)
                raise
        finally:
            self.busy = False

    def lock(self, flow_id: UUID) -> asyncio.Lock:
        lock = self.locks.get(flow_id)
        if lock is None:
            locks = self.locks
            if len(locks) >= _LOCKS_MAX:
                for key in [k for k, v in locks.items() if not v.locked()]:
                    del locks[key]
            lock = locks[flow_id] = asyncio.Lock()
        return lock

    async def aclose(self) -> None:
        pool, self.pool = self.pool, None
        kept, self.kept = self.kept, None
        if pool is not None:
            if kept is not None:
                await pool.release(kept)
            try:
                await asyncio.wait_for(pool.close(), 5)
            except _UNAVAILABLE:
                pool.terminate()


class Database:
    """The server one store uses: pools, the schema check, error translation."""

    def __init__(self, settings: PostgresSettings) -> None:
        self.dsn = settings.dsn
        self.shown = redact_url(settings.dsn)
        self.schema_name = settings.schema_name
        self.pool_size = settings.pool_size
        self.statement_timeout = settings.statement_timeout
        self.connect_timeout = settings.connect_timeout
        #: How long the client waits for an answer: past statement_timeout, so the
        #: server's own timeout normally fires first; this one catches a frozen server.
        self.answer_timeout = settings.statement_timeout + 5
        self.loops: PerLoop[LoopPool] = PerLoop(lambda: LoopPool(self._open_pool))
        self._schema_ready = False

    # -- opening ------------------------------------------------------------------------

    async def _open_pool(self) -> asyncpg.Pool:
        try:
            pool = await asyncpg.create_pool(
                self.dsn,
                min_size=1,
                # pool_size for calls at once, plus the one each loop keeps.
                max_size=self.pool_size + 1,
                timeout=self.connect_timeout,
                command_timeout=self.answer_timeout,
                max_inactive_connection_lifetime=60.0,
                reset=_keep_session,
                server_settings={
                    "application_name": "quartermaster",
                    "statement_timeout": str(int(self.statement_timeout * 1000)),
                },
            )
        except _REFUSED as exc:
            raise self._open_error(exc) from None
        except _UNAVAILABLE as exc:
            raise self.unavailable(exc, self.connect_timeout) from exc
        except pgerr.PostgresError as exc:
            raise self._open_error(exc) from None
        if not self._schema_ready:
            try:
                async with pool.acquire() as conn:
                    await self._prepare(conn)
            except BaseException:
                pool.terminate()
                raise
            self._schema_ready = True
        return pool

    async def _prepare(self, conn: asyncpg.Connection) -> None:
        """Check the schema's version; create or migrate it. Refuses (writing
        nothing) a schema newer than this version knows."""
        s = self.schema_name
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"qm:{s}")
                version = 0
                if await conn.fetchval("SELECT to_regclass($1)", f"{s}.qm_meta") is not None:
                    found = await conn.fetchval(schema.version_query(s))
                    version = 0 if found is None else int(found)
                if version > schema.SCHEMA_VERSION:
                    raise SchemaVersionError(
                        f"cannot open the PostgreSQL store {self.describe()}: its schema "
                        f"{s!r} is at version {version}, newer than this qm-store-postgres "
                        f"understands ({schema.SCHEMA_VERSION}); upgrade qm-store-postgres. "
                        "Nothing was changed."
                    )
                if version < schema.SCHEMA_VERSION:
                    await conn.execute(schema.meta_sql(s))
                    for step in schema.MIGRATIONS[version:]:
                        await conn.execute(step(s))
                    await conn.execute(schema.set_version_sql(s), str(schema.SCHEMA_VERSION))
        except StoreError:
            raise
        except _UNAVAILABLE as exc:
            raise self.unavailable(exc) from exc
        except pgerr.PostgresError as exc:
            raise self._open_error(exc) from None

    def describe(self) -> str:
        """``<dsn> schema <name>``, password hidden."""
        return f"{self.shown} schema {self.schema_name}"

    def _open_error(self, exc: BaseException) -> StoreOpenError:
        hint = ""
        if isinstance(exc, pgerr.InsufficientPrivilegeError):
            hint = (
                f" (the role needs CREATE on the database to make schema "
                f"{self.schema_name!r}, and rights on its tables)"
            )
        return StoreOpenError(f"cannot open the PostgreSQL store {self.describe()}: {exc}{hint}")

    def unavailable(
        self, exc: BaseException, waited: float | None = None
    ) -> PostgresUnavailableError:
        detail = redact_text(str(exc)) or type(exc).__name__
        if isinstance(exc, TimeoutError):
            detail = f"no answer within {waited or self.answer_timeout:g} s"
        return PostgresUnavailableError(
            f"PostgreSQL server {self.shown} is unavailable{os_reason(exc)}: {detail}"
        )

    def error(self, exc: BaseException) -> StoreError:
        """A store error naming the server, for an exception of asyncpg."""
        if isinstance(exc, StoreError):
            return exc
        if isinstance(exc, pgerr.QueryCanceledError):
            return PostgresStoreError(
                f"PostgreSQL server {self.shown}: a statement ran past statement_timeout "
                f"({self.statement_timeout:g} s): {exc}"
            )
        if isinstance(exc, _REFUSED):
            return self._open_error(exc)
        if isinstance(exc, _UNAVAILABLE):
            return self.unavailable(exc)
        return PostgresStoreError(
            f"PostgreSQL server {self.shown} failed: {type(exc).__name__}: {redact_text(str(exc))}"
        )

    # -- running ------------------------------------------------------------------------

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(connection, *args)`` on a connection of this loop's pool; errors
        of the driver become store errors naming the server."""
        try:
            async with self.loops.get().connection() as conn:
                return await fn(conn, *args)
        except (*_UNAVAILABLE, pgerr.PostgresError) as exc:
            raise self.error(exc) from exc

    async def fetchval_in_order(self, flow_id: UUID, sql: str, args: tuple[Any, ...]) -> Any:
        """One statement for ``flow_id``, after the flow's earlier ones of this loop;
        its first value."""
        loop_pool = self.loops.get()
        async with loop_pool.lock(flow_id):
            try:
                async with loop_pool.connection() as conn:
                    return await conn.fetchval(sql, *args)
            except (*_UNAVAILABLE, pgerr.PostgresError) as exc:
                raise self.error(exc) from exc

    async def open(self) -> None:
        """Open this loop's pool now (checking the schema on the first)."""
        await self.loops.get().get()

    async def close(self) -> None:
        await self.loops.close()


async def execute(conn: asyncpg.Connection, sql: str, *args: Any) -> None:
    """For `Database.run`: one statement, no result."""
    await conn.execute(sql, *args)


async def fetchval(conn: asyncpg.Connection, sql: str, *args: Any) -> Any:
    """For `Database.run`: the first value of the first row, or None."""
    return await conn.fetchval(sql, *args)


async def fetch(conn: asyncpg.Connection, sql: str, *args: Any) -> list[Any]:
    """For `Database.run`: every row."""
    return list(await conn.fetch(sql, *args))
