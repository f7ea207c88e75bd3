"""Concurrency slots per limit key in the store's file (`HoldsSlots`), and the starts
of each key in its window (`LimitsRate`), and the activations waiting for a key
(`CountsWaiters`), and the LLM tokens of each key in its window (`LimitsTokens`),
and the usage of each budget key across flows (`KeepsKeyUsage`): every process
using the file shares them.
A slot or a start is taken in one write transaction (``BEGIN IMMEDIATE``: one
writer at a time), after dropping the key's expired slots or starts. A refused
taker of a slot is queued in ``qm_waiters`` with a ticket one above the key's
highest (`HoldsSlots.take_slot`: first come, first served); waiters only marked
(waiting for a window) have no ticket and are not in the line. A window's check
keeps the window's line in its transaction (`KeepsWindowLines`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from quartermaster_engine.runner.window_line import tokens_wait
from quartermaster_engine.stores.records import TokenCount, UsageCount, WindowAsk


def take_slot(
    db: sqlite3.Connection, key: str, holder: str, limit: int, now: float, expires_at: float
) -> int:
    db.execute("DELETE FROM qm_slots WHERE key = ? AND expires_at <= ?", (key, now))
    mine = db.execute(
        "UPDATE qm_slots SET expires_at = ? WHERE key = ? AND holder = ?", (expires_at, key, holder)
    )
    if mine.rowcount:
        db.execute("DELETE FROM qm_waiters WHERE key = ? AND expires_at <= ?", (key, now))
        return 0
    (held,) = db.execute("SELECT count(*) FROM qm_slots WHERE key = ?", (key,)).fetchone()
    ahead = _ahead(db, key, holder, now)
    if held + ahead < limit:
        db.execute("DELETE FROM qm_waiters WHERE key = ? AND waiter = ?", (key, holder))
        db.execute(
            "INSERT INTO qm_slots (key, holder, expires_at) VALUES (?, ?, ?)",
            (key, holder, expires_at),
        )
        return 0
    _queue(db, key, holder, expires_at)
    return ahead + 1


def _ahead(db: sqlite3.Connection, line: str, waiter: str, now: float) -> int:
    """Drop ``line``'s waiters expired at ``now``; how many are queued before ``waiter``
    (all of them when it is not queued)."""
    db.execute("DELETE FROM qm_waiters WHERE key = ? AND expires_at <= ?", (line, now))
    row = db.execute(
        "SELECT ticket FROM qm_waiters WHERE key = ? AND waiter = ? AND ticket IS NOT NULL",
        (line, waiter),
    ).fetchone()
    (ahead,) = db.execute(
        "SELECT count(*) FROM qm_waiters WHERE key = ? AND ticket < ?",
        (line, 2**62 if row is None else row[0]),
    ).fetchone()
    return int(ahead)


def _queue(db: sqlite3.Connection, line: str, waiter: str, expires_at: float) -> None:
    """Queue ``waiter`` (a new ticket, after every other of ``line``) or keep its place."""
    db.execute(
        "INSERT INTO qm_waiters (key, waiter, expires_at, ticket) VALUES (?, ?, ?, "
        "(SELECT coalesce(max(ticket), 0) + 1 FROM qm_waiters WHERE key = ?)) "
        "ON CONFLICT (key, waiter) DO UPDATE SET expires_at = excluded.expires_at, "
        "ticket = coalesce(qm_waiters.ticket, excluded.ticket)",
        (line, waiter, expires_at, line),
    )


def _turn(
    db: sqlite3.Connection, ask: WindowAsk, ahead: int, wait: float, leave: bool
) -> tuple[int, float]:
    """`KeepsWindowLines`' answer: the waiter starts (out of its line if ``leave``) when
    nobody is ahead and its window had room (``wait`` 0), else it is queued."""
    if not ahead and wait <= 0:
        if leave:
            db.execute("DELETE FROM qm_waiters WHERE key = ? AND waiter = ?", ask[1:3])
        return 0, 0.0
    _queue(db, ask.line, ask.waiter, ask.expires_at)
    return ahead + 1, (0.0 if ahead else wait)


def take_request_in_line(db: sqlite3.Connection, ask: WindowAsk) -> tuple[int, float]:
    ahead = _ahead(db, ask.line, ask.waiter, ask.wall)
    wait = 0.0 if ahead else take_request(db, ask.key, ask.limit, ask.per, ask.now)
    return _turn(db, ask, ahead, wait, True)


def take_tokens_in_line(db: sqlite3.Connection, ask: WindowAsk, leave: bool) -> tuple[int, float]:
    ahead = _ahead(db, ask.line, ask.waiter, ask.wall)
    wait = 0.0
    if not ahead:
        used = tokens_in_window(db, ask.key, ask.per, ask.now)
        wait = tokens_wait(used, ask.limit, ask.per, ask.now)
    return _turn(db, ask, ahead, wait, leave)


def renew(db: sqlite3.Connection, key: str, holder: str, expires_at: float) -> bool:
    cursor = db.execute(
        "UPDATE qm_slots SET expires_at = ? WHERE key = ? AND holder = ?", (expires_at, key, holder)
    )
    return bool(cursor.rowcount)


def release(db: sqlite3.Connection, key: str, holder: str) -> None:
    db.execute("DELETE FROM qm_slots WHERE key = ? AND holder = ?", (key, holder))


def in_use(db: sqlite3.Connection, now: float) -> dict[str, int]:
    rows = db.execute(
        "SELECT key, count(*) FROM qm_slots WHERE expires_at > ? GROUP BY key ORDER BY key", (now,)
    ).fetchall()
    return {str(key): int(count) for key, count in rows}


def take_request(db: sqlite3.Connection, key: str, limit: int, per: float, now: float) -> float:
    db.execute("DELETE FROM qm_requests WHERE key = ? AND at <= ?", (key, now - per))
    (count, oldest) = db.execute(
        "SELECT count(*), min(at) FROM qm_requests WHERE key = ?", (key,)
    ).fetchone()
    if count < limit:
        db.execute("INSERT INTO qm_requests (key, at) VALUES (?, ?)", (key, now))
        return 0.0
    return float(oldest) + per - now


def requests_in_window(db: sqlite3.Connection, key: str, per: float, now: float) -> int:
    (count,) = db.execute(
        "SELECT count(*) FROM qm_requests WHERE key = ? AND at > ?", (key, now - per)
    ).fetchone()
    return int(count)


def mark_waiting(
    db: sqlite3.Connection, key: str, waiter: str, now: float, expires_at: float
) -> None:
    db.execute("DELETE FROM qm_waiters WHERE key = ? AND expires_at <= ?", (key, now))
    db.execute(
        "INSERT INTO qm_waiters (key, waiter, expires_at) VALUES (?, ?, ?) "
        "ON CONFLICT (key, waiter) DO UPDATE SET expires_at = excluded.expires_at",
        (key, waiter, expires_at),
    )


def unmark_waiting(db: sqlite3.Connection, key: str, waiter: str) -> None:
    db.execute("DELETE FROM qm_waiters WHERE key = ? AND waiter = ?", (key, waiter))


def waiting_counts(db: sqlite3.Connection, now: float) -> dict[str, int]:
    rows = db.execute(
        "SELECT key, count(*) FROM qm_waiters WHERE expires_at > ? GROUP BY key ORDER BY key",
        (now,),
    ).fetchall()
    return {str(key): int(count) for key, count in rows}


def add_tokens(db: sqlite3.Connection, key: str, tokens: int, now: float, per: float) -> None:
    db.execute("DELETE FROM qm_tokens WHERE key = ? AND at <= ?", (key, now - per))
    db.execute("INSERT INTO qm_tokens (key, at, tokens) VALUES (?, ?, ?)", (key, now, tokens))


def tokens_in_window(
    db: sqlite3.Connection, key: str, per: float, now: float
) -> list[tuple[float, int]]:
    rows = db.execute(
        "SELECT at, tokens FROM qm_tokens WHERE key = ? AND at > ? ORDER BY at", (key, now - per)
    ).fetchall()
    return [(float(at), int(tokens)) for at, tokens in rows]


def add_key_usage(
    db: sqlite3.Connection, key: str, node_runs: int, tokens: int, cost: float
) -> None:
    db.execute(
        "INSERT INTO qm_key_usage (key, node_runs, tokens, cost) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (key) DO UPDATE SET node_runs = node_runs + excluded.node_runs, "
        "tokens = tokens + excluded.tokens, cost = cost + excluded.cost",
        (key, node_runs, tokens, cost),
    )


def add_counts(
    db: sqlite3.Connection, usage: Sequence[UsageCount], tokens: Sequence[TokenCount]
) -> None:
    """A commit's ``key_usage`` and ``key_tokens``, in its transaction."""
    for u in usage:
        add_key_usage(db, u.key, u.node_runs, u.tokens, u.cost)
    for t in tokens:
        add_tokens(db, t.key, t.tokens, t.at, t.per)


def keys_usage(db: sqlite3.Connection, keys: Sequence[str]) -> list[tuple[int, int, float]]:
    marks = ", ".join("?" * len(keys))
    rows = db.execute(
        f"SELECT key, node_runs, tokens, cost FROM qm_key_usage WHERE key IN ({marks})",
        tuple(keys),
    ).fetchall()
    found = {str(k): (int(r), int(t), float(c)) for k, r, t, c in rows}
    return [found.get(key, (0, 0, 0.0)) for key in keys]


def key_usages(db: sqlite3.Connection) -> dict[str, tuple[int, int, float]]:
    rows = db.execute("SELECT key, node_runs, tokens, cost FROM qm_key_usage ORDER BY key")
    return {str(k): (int(r), int(t), float(c)) for k, r, t, c in rows.fetchall()}
