"""`HoldsSlots`, `LimitsRate`, `LimitsTokens` and `CountsWaiters` within this process:
the slots, windows and waiters of an engine whose store keeps none (the memory store),
held under one lock. The line of a key's slot (`HoldsSlots.take_slot`) is its queued
waiters, by a ticket counted up per process; a window's checks keep their line
(`KeepsWindowLines`) under the same lock."""

from __future__ import annotations

import threading
from collections import deque

from quartermaster_engine.runner.window_line import tokens_wait
from quartermaster_engine.stores.records import WindowAsk


class LocalSlots:
    """`HoldsSlots` within this process: the slots of an engine whose store keeps none."""

    def __init__(self) -> None:
        self._held: dict[str, dict[str, float]] = {}
        self._waiting: dict[str, dict[str, float]] = {}
        #: Per key, the ticket of each waiter in its line (`take_slot`'s first come).
        self._line: dict[str, dict[str, int]] = {}
        self._tickets = 0
        self._tokens: dict[str, deque[tuple[float, int]]] = {}
        self._started: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def take_request(self, key: str, limit: int, per: float, now: float) -> float:
        with self._lock:
            return self._take_request(key, limit, per, now)

    def _take_request(self, key: str, limit: int, per: float, now: float) -> float:
        started = self._started.setdefault(key, deque())
        while started and started[0] <= now - per:
            started.popleft()
        if len(started) < limit:
            started.append(now)
            return 0.0
        return started[0] + per - now

    def take_request_in_line(self, ask: WindowAsk) -> tuple[int, float]:
        """`KeepsWindowLines.take_request_in_line`: the start counted only when no
        waiter is ahead of ``ask.waiter`` in its line."""
        with self._lock:
            ahead = self._ahead(ask.line, ask.waiter, ask.wall)
            wait = 0.0 if ahead else self._take_request(ask.key, ask.limit, ask.per, ask.now)
            return self._turn(ask, ahead, wait, leave=True)

    def take_tokens_in_line(self, ask: WindowAsk, leave: bool) -> tuple[int, float]:
        """`KeepsWindowLines.take_tokens_in_line`."""
        with self._lock:
            ahead = self._ahead(ask.line, ask.waiter, ask.wall)
            wait = 0.0
            if not ahead:
                since = ask.now - ask.per
                used = [(at, n) for at, n in self._tokens.get(ask.key, ()) if at > since]
                wait = tokens_wait(used, ask.limit, ask.per, ask.now)
            return self._turn(ask, ahead, wait, leave=leave)

    def _ahead(self, line: str, waiter: str, wall: float) -> int:
        """How many unexpired waiters of ``line`` are queued before ``waiter``."""
        self._drop_waiters(line, wall)
        queued = self._line.setdefault(line, {})
        ticket = queued.get(waiter)
        return sum(1 for t in queued.values() if ticket is None or t < ticket)

    def _turn(self, ask: WindowAsk, ahead: int, wait: float, leave: bool) -> tuple[int, float]:
        """Let the waiter start (out of its line if ``leave``) when nobody is ahead and
        the window had room (``wait`` 0), else queue it or keep its ticket."""
        line, waiter, queued = ask.line, ask.waiter, self._line[ask.line]
        if not ahead and wait <= 0:
            if leave:
                queued.pop(waiter, None)
                self._waiting.get(line, {}).pop(waiter, None)
            return 0, 0.0
        if waiter not in queued:
            self._tickets += 1
            queued[waiter] = self._tickets
        self._waiting.setdefault(line, {})[waiter] = ask.expires_at
        return ahead + 1, (0.0 if ahead else wait)

    def requests_in_window(self, key: str, per: float, now: float) -> int:
        with self._lock:
            return sum(1 for t in self._started.get(key, ()) if t > now - per)

    def take_slot(self, key: str, holder: str, limit: int, now: float, expires_at: float) -> int:
        with self._lock:
            held = self._held.setdefault(key, {})
            for other in [h for h, t in held.items() if t <= now]:
                del held[other]
            waiting = self._drop_waiters(key, now)
            line = self._line.setdefault(key, {})
            if holder not in held:
                ticket = line.get(holder)
                ahead = sum(1 for t in line.values() if ticket is None or t < ticket)
                if len(held) + ahead >= limit:
                    if ticket is None:
                        self._tickets += 1
                        line[holder] = self._tickets
                    waiting[holder] = expires_at
                    return ahead + 1
                line.pop(holder, None)
                waiting.pop(holder, None)
            held[holder] = expires_at
            return 0

    def renew_slot(self, key: str, holder: str, expires_at: float) -> bool:
        with self._lock:
            held = self._held.get(key, {})
            if holder not in held:
                return False
            held[holder] = expires_at
            return True

    def release_slot(self, key: str, holder: str) -> None:
        with self._lock:
            self._held.get(key, {}).pop(holder, None)

    def slots_in_use(self, now: float) -> dict[str, int]:
        with self._lock:
            return _unexpired(self._held, now)

    def add_tokens(self, key: str, tokens: int, now: float, per: float) -> None:
        with self._lock:
            used = self._tokens.setdefault(key, deque())
            while used and used[0][0] <= now - per:
                used.popleft()
            used.append((now, tokens))

    def tokens_in_window(self, key: str, per: float, now: float) -> list[tuple[float, int]]:
        with self._lock:
            return [(at, n) for at, n in self._tokens.get(key, ()) if at > now - per]

    def mark_waiting(self, key: str, waiter: str, now: float, expires_at: float) -> None:
        with self._lock:
            self._drop_waiters(key, now)[waiter] = expires_at

    def unmark_waiting(self, key: str, waiter: str) -> None:
        with self._lock:
            self._waiting.get(key, {}).pop(waiter, None)
            self._line.get(key, {}).pop(waiter, None)

    def _drop_waiters(self, key: str, now: float) -> dict[str, float]:
        """The key's waiters, those expired at ``now`` dropped (also from its line)."""
        waiting = self._waiting.setdefault(key, {})
        line = self._line.get(key, {})
        for other in [w for w, t in waiting.items() if t <= now]:
            del waiting[other]
            line.pop(other, None)
        return waiting

    def waiting_counts(self, now: float) -> dict[str, int]:
        with self._lock:
            return _unexpired(self._waiting, now)


def _unexpired(entries: dict[str, dict[str, float]], now: float) -> dict[str, int]:
    """Per key, how many of its entries expire after ``now`` (keys with none left out)."""
    counts = {k: sum(1 for t in e.values() if t > now) for k, e in entries.items()}
    return {k: n for k, n in counts.items() if n}
