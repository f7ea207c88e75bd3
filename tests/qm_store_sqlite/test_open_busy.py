"""Opening a store while another connection holds a lock: `retry_busy`, which covers
the locks SQLite's busy handler does not (schema read and WAL switch at open)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from qm_store_sqlite.connection import retry_busy


def _locked_file(path: Path) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    """A holder with the write lock, and a connection that does not wait for it."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (a)")
    holder.execute("BEGIN IMMEDIATE")
    waiter = sqlite3.connect(path, timeout=0, isolation_level=None)
    return holder, waiter


def test_a_busy_operation_is_retried_until_the_lock_is_released(tmp_path: Path) -> None:
    holder, waiter = _locked_file(tmp_path / "f.db")
    calls = 0

    def write() -> str:
        nonlocal calls
        calls += 1
        waiter.execute("BEGIN IMMEDIATE")
        waiter.execute("ROLLBACK")
        return "written"

    release = threading.Timer(0.2, holder.execute, ("ROLLBACK",))
    release.start()
    try:
        assert retry_busy(write, timeout=5.0) == "written"
    finally:
        release.join()
    assert calls > 1  # it failed busy first: the lock was held for 0.2 s


def test_busy_past_the_timeout_is_raised(tmp_path: Path) -> None:
    holder, waiter = _locked_file(tmp_path / "f.db")

    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        retry_busy(lambda: waiter.execute("BEGIN IMMEDIATE"), timeout=0.1)

    holder.execute("ROLLBACK")


def test_other_errors_are_raised_at_once(tmp_path: Path) -> None:
    calls = 0
    db = sqlite3.connect(tmp_path / "f.db")

    def bad() -> None:
        nonlocal calls
        calls += 1
        db.execute("SELEC 1")

    with pytest.raises(sqlite3.OperationalError, match="syntax error"):
        retry_busy(bad, timeout=5.0)
    assert calls == 1
