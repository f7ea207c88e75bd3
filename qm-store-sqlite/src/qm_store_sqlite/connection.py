"""How the store talks to its file: an aiosqlite connection, plus a fast path for
short writes.

Two kinds of work, two ways to run it:

- `Database.run` runs a function on aiosqlite's connection thread: opening the
  file (checks, WAL, schema), every read (``load_flow`` decodes a whole flow
  off the event loop), bulk deletes, and any write that has to wait for
  another connection's write lock (it waits there, up to ``busy_timeout``,
  without blocking an event loop). The thread runs one function at a time and
  each function holds its whole transaction, so transactions never interleave
  on that connection. aiosqlite's connection is not bound to an event loop
  (each call's future belongs to the caller's loop), so one serves every loop
  and thread of the process.
- `Database.write` runs a short write transaction (a node's commit) on the
  calling thread, with that thread's own connection. The whole transaction is
  plain synchronous code with no ``await`` in it, so nothing else runs on that
  connection meanwhile. Its ``BEGIN IMMEDIATE`` does not wait: when another
  connection (another process, another thread of this one) holds the write
  lock, the transaction goes to `run` instead and waits there. A hand-off to
  a thread and back costs more than the commit itself, and a chain's nodes
  wait for each other's commits, so this path is what keeps a durable node
  cheap.

Other processes on the same file are other connections: SQLite's write lock
orders them, and WAL lets readers go on while one writes. A process forked
after using the store starts with new connections in the child.

aiosqlite has no public call that runs a function on its thread, so `run`
uses ``Connection._execute`` (checked on import), and its thread
(``Connection._thread``, checked when it starts) is made a daemon thread so
that a script that never closes its store still exits.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from qm_store_sqlite import schema
from qm_store_sqlite.errors import (
    SchemaVersionError,
    SQLiteStoreError,
    StoreDamagedError,
    StoreOpenError,
)

T = TypeVar("T")

_SQLITE_HEADER = b"SQLite format 3\x00"

if not callable(getattr(aiosqlite.Connection, "_execute", None)):  # pragma: no cover
    raise ImportError(
        f"qm-store-sqlite needs aiosqlite's Connection._execute, which aiosqlite "
        f"{aiosqlite.__version__} does not have; install aiosqlite 0.22"
    )


_UNCHANGED = "it was not changed. Restore it from a backup, or move it away to start a new store"
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26


def damaged(path: Path, exc: BaseException) -> StoreDamagedError | None:
    """The `StoreDamagedError` an error met while reading or writing ``path`` stands
    for, or None when it is no sign of damage: SQLite's corrupt-file codes, text that
    is not UTF-8, a missing table of ours, stored JSON that does not parse."""
    if isinstance(exc, sqlite3.DatabaseError):
        code = getattr(exc, "sqlite_errorcode", None)
        text = str(exc)
        if not (
            code in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
            or "Could not decode to UTF-8" in text
            or text.startswith("no such table: qm_")
        ):
            return None
    elif not isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return None
    return StoreDamagedError(
        f"the SQLite store {path} is damaged ({str(exc)[:200]}); nothing was changed "
        "(the transaction was rolled back). Restore it from a backup, or move it away "
        "to start a new store"
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qm-store-sqlite")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def check_path(path: Path) -> None:
    """Fail with a `StoreOpenError` naming ``path`` if SQLite could not use it.

    Reads at most the file's first 16 bytes; writes nothing.
    """
    folder = path.parent
    prefix = f"cannot open the SQLite store {path}"
    if not folder.exists():
        raise StoreOpenError(f"{prefix}: its folder {folder} does not exist")
    if not folder.is_dir():
        raise StoreOpenError(f"{prefix}: {folder} is not a folder")
    if path.is_dir():
        raise StoreOpenError(f"{prefix}: it is a folder, not a file")
    # WAL mode keeps two files beside the database (-wal, -shm): the folder
    # must be writable even when the database file exists.
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreOpenError(
            f"{prefix}: its folder {folder} is read-only (SQLite needs to create the "
            "database and its -wal and -shm files there)"
        )
    if not path.exists():
        return
    if not os.access(path, os.R_OK | os.W_OK):
        raise StoreOpenError(f"{prefix}: the file is not writable")
    with path.open("rb") as f:
        head = f.read(len(_SQLITE_HEADER))
    if head and head != _SQLITE_HEADER:
        raise StoreOpenError(
            f"{prefix}: the file is not a SQLite database (it starts with {head[:8]!r})"
        )


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused because another connection holds a lock."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:  # pragma: no cover - Python builds without error codes
        return "locked" in str(exc) or "busy" in str(exc)
    return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def in_write_tx(db: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    """``fn(db, *args)`` in one write transaction: all of it or none of it."""
    db.execute("BEGIN IMMEDIATE")
    return _finish_tx(db, fn, args)


def _finish_tx(db: sqlite3.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    try:
        result = fn(db, *args)
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return result


def in_read_tx(db: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    """``fn(db, *args)`` reading one consistent snapshot of the file."""
    db.execute("BEGIN")
    try:
        return fn(db, *args)
    finally:
        db.execute("COMMIT")


class _Handle:
    """An open aiosqlite connection and the sqlite3 connection its thread uses."""

    __slots__ = ("conn", "raw")

    def __init__(self, conn: aiosqlite.Connection, raw: sqlite3.Connection) -> None:
        self.conn = conn
        self.raw = raw


async def _start_thread(raw: sqlite3.Connection) -> _Handle:
    conn = aiosqlite.Connection(lambda: raw, 64)
    thread = getattr(conn, "_thread", None)
    if not isinstance(thread, threading.Thread):  # pragma: no cover - another aiosqlite
        raw.close()
        raise SQLiteStoreError(
            f"qm-store-sqlite needs aiosqlite's connection thread (Connection._thread), "
            f"which aiosqlite {aiosqlite.__version__} does not have; install aiosqlite 0.22"
        )
    # A script that never closes its store must still be able to exit.
    thread.daemon = True
    await conn
    return _Handle(conn, raw)


class Database:
    """The connections of one store to one file; see the module docstring."""

    def __init__(self, path: Path, synchronous: str, busy_timeout: float) -> None:
        self.path = path
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        self._handle: _Handle | None = None
        self._lock = threading.Lock()
        # Per-thread connections of `write`, tagged with the generation they
        # belong to: `close` starts a new one.
        self._local = threading.local()
        self._generation = 0
        self._thread_conns: list[sqlite3.Connection] = []
        _open_databases.add(self)

    def _forget_after_fork(self) -> None:
        """In a forked child: the connection thread did not survive the fork and
        SQLite connections must not cross it, so start afresh. The parent's
        connections are kept unclosed: closing them here could disturb its locks."""
        _inherited.extend(self._thread_conns)
        _inherited.append(self._handle)
        self._thread_conns = []
        self._handle = None
        self._generation += 1
        self._lock = threading.Lock()

    # -- the aiosqlite connection ---------------------------------------------------------

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(sqlite3_connection, *args)`` on the connection thread."""
        while True:
            handle = self._handle
            if handle is None or not handle.conn._thread.is_alive():
                # (aiosqlite's thread dies if a caller's loop closed before it
                # could deliver the result: start a new one rather than hang.)
                handle = await asyncio.to_thread(self._open_blocking)
            # aiosqlite's hook for running a function on its thread (untyped).
            execute: Callable[..., Awaitable[T]] = handle.conn._execute
            try:
                return await execute(_call, handle, fn, args)
            except json.JSONDecodeError as exc:
                error = damaged(self.path, exc)
                if error is None:
                    raise
                raise error from exc
            except ValueError as exc:
                # Closed between our read of the handle and the call: the
                # function never ran, so it is safe to run it on a new one.
                if handle is self._handle or "closed" not in str(exc):
                    raise
            except sqlite3.OperationalError as exc:
                if is_busy(exc):
                    raise SQLiteStoreError(
                        f"the SQLite store {self.path} stayed locked by another connection "
                        f"for longer than its busy_timeout ({self.busy_timeout:g} s): {exc}"
                    ) from exc
                error = damaged(self.path, exc)
                if error is None:
                    raise
                raise error from exc
            except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
                error = damaged(self.path, exc)
                if error is None:
                    raise
                raise error from exc

    async def open(self) -> None:
        """Open the file now (checks, WAL, schema) instead of on first use."""
        if self._handle is None:
            await asyncio.to_thread(self._open_blocking)

    def _open_blocking(self) -> _Handle:
        # On a helper thread, so opening never depends on the caller's loop
        # staying alive; the lock makes concurrent first uses share one open.
        with self._lock:
            handle = self._handle
            if handle is None or not handle.conn._thread.is_alive():
                raw = self._connect()
                handle = self._handle = asyncio.run(_start_thread(raw))
            return handle

    def _connect(self) -> sqlite3.Connection:
        """A prepared connection (checks, WAL, schema), made here so that a failure
        never leaves an aiosqlite thread behind. It is used by aiosqlite's thread
        only from then on."""
        check_path(self.path)
        raw = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=256,
        )
        try:
            prepare(raw, self.path, self.synchronous, self.busy_timeout)
        except BaseException:
            raw.close()
            raise
        return raw

    # -- short writes on the calling thread -------------------------------------------------

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(db, *args)`` in one write transaction: on this thread if the write
        lock is free, else on the connection thread, which waits for it."""
        if self._handle is None:
            await self.open()
        db = self._thread_conn()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            return await self.run(in_write_tx, fn, *args)
        except sqlite3.DatabaseError as exc:
            error = damaged(self.path, exc)
            if error is None:
                raise
            raise error from exc
        try:
            return _finish_tx(db, fn, args)
        except (sqlite3.DatabaseError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            error = damaged(self.path, exc)
            if error is None:
                raise
            raise error from exc

    def _thread_conn(self) -> sqlite3.Connection:
        entry = getattr(self._local, "entry", None)
        generation = self._generation
        if entry is not None and entry[0] == generation:
            return entry[1]  # type: ignore[no-any-return]
        # timeout=0: a busy write lock sends the transaction to `run`, which
        # waits off the event loop. Only this thread uses the connection;
        # check_same_thread is off so that `close` can close it from any thread.
        db = sqlite3.connect(
            self.path,
            timeout=0,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=256,
        )
        db.execute(f"PRAGMA synchronous = {self.synchronous}")
        with self._lock:
            self._thread_conns.append(db)
        self._local.entry = (generation, db)
        return db

    async def close(self) -> None:
        """Close every connection (the aiosqlite one after its queued work); the
        next use reopens. Call it when no flow is running on the store."""
        with self._lock:
            handle, self._handle = self._handle, None
            conns, self._thread_conns = self._thread_conns, []
            self._generation += 1
        for db in conns:
            db.close()
        if handle is not None:
            await handle.conn.close()


_open_databases: weakref.WeakSet[Database] = weakref.WeakSet()
_inherited: list[Any] = []


def _after_fork_in_child() -> None:
    for database in list(_open_databases):
        database._forget_after_fork()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _call(handle: _Handle, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    return fn(handle.raw, *args)


def retry_busy(fn: Callable[[], T], timeout: float) -> T:
    """``fn()``, again while SQLite answers busy, for up to ``timeout`` seconds.

    SQLite's busy handler does not cover every lock an opening connection meets:
    while another process creates the file or switches it to WAL, reading the
    schema or setting the journal mode can fail busy at once. Other errors, and
    a busy past the timeout, are raised.
    """
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            left = deadline - time.monotonic()
            if not is_busy(exc) or left <= 0:
                raise
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.05)


def prepare(db: sqlite3.Connection, path: Path, synchronous: str, busy_timeout: float) -> None:
    """Check the file's schema version, then set WAL mode and migrate if needed.

    A file that is not SQLite or was written by a newer version is refused
    before anything is written to it.
    """
    prefix = f"cannot open the SQLite store {path}"
    try:
        version = retry_busy(lambda: schema.read_version(db), busy_timeout)
    except schema.SchemaDamage as exc:
        raise StoreDamagedError(f"{prefix}: the file is damaged: {exc}; {_UNCHANGED}") from None
    except sqlite3.OperationalError as exc:
        if is_busy(exc):
            raise StoreOpenError(f"{prefix}: {exc}") from None
        raise StoreOpenError(f"{prefix}: the file is not a SQLite database ({exc})") from None
    except sqlite3.DatabaseError as exc:
        raise StoreOpenError(f"{prefix}: the file is not a SQLite database ({exc})") from None
    if version > schema.SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{prefix}: it was written by a newer qm-store-sqlite (schema version {version}); "
            f"qm-store-sqlite {_version()} reads schema versions up to "
            f"{schema.SCHEMA_VERSION}. Upgrade qm-store-sqlite to use this file; it was not "
            "changed."
        )
    try:
        mode = retry_busy(
            lambda: db.execute("PRAGMA journal_mode = WAL").fetchone()[0], busy_timeout
        )
    except sqlite3.OperationalError as exc:
        raise StoreOpenError(f"{prefix}: {exc}") from None
    if str(mode).lower() != "wal":
        raise StoreOpenError(
            f"{prefix}: SQLite refused WAL mode (the journal mode stays {mode!r}); the file "
            "must be on a local filesystem"
        )
    db.execute(f"PRAGMA synchronous = {synchronous}")
    if version < schema.SCHEMA_VERSION:
        # Another process may migrate at the same time: read the version again
        # once we hold the write lock.
        in_write_tx(db, _migrate)


def _migrate(db: sqlite3.Connection) -> None:
    current = schema.read_version(db)
    if current < schema.SCHEMA_VERSION:
        schema.migrate(db, current)
