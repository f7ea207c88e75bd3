"""Concurrency limits per key: a slot held while an activation's executor runs.

``[limits."<key>"] max_in_flight = N`` (or a ``*`` pattern such as
``"llm:openai:*"``) limits the activations declaring that key to N at once
across every process sharing the store. An activation's keys are what its
executor declares (`nodes.DeclaresLimitKeys`; the LLM pack declares
``llm:{provider}:{model}``) plus its node's metadata ``limit_keys``, worked out
once per compiled node; an activation with no limited key costs one dictionary
lookup and no store call.

Slots live in the store when it `HoldsSlots` (SQLite, Redis, PostgreSQL), else in
this process (`LocalSlots`: the memory store). A slot expires ``ttl`` seconds
(the engine's lease time) after it was taken or last renewed; the holder renews
it every third of that while the executor runs, so a holder that was killed
frees its slot within the ttl. A full key is polled (10 ms, doubling to 250 ms,
jittered) until a slot frees: the wait holds the calling task, not a lease.

Windows (below) run on the engine's clock (a `TestClock` in tests); slots and
waiters' marks on wall time, which every process shares.

``max_requests`` per ``per`` seconds counts the starts of a key in a sliding
window, in the store when it `LimitsRate` (else in this process); a start that
finds the window full sleeps until its oldest start leaves it, then asks again.

``max_tokens`` per ``per`` seconds sums the LLM tokens (``usage`` in a record's
output data, as the LLM pack writes it) of a key's activations in a sliding window,
in the store when it `LimitsTokens` (else in this process): each record's tokens
are counted by its commit (`usage_counts`; a refused duplicate adds nothing), and an
activation starts only while fewer than ``max_tokens`` are in the window (the one
that crosses it runs; the next waits until enough tokens leave the window).

An activation that has to wait (for a slot or for its window) is recorded as a
waiter of the key, in the store when it `CountsWaiters` (else in this process),
marked again every third of the ttl while it waits and removed when it stops:
``qm limits`` counts them. An activation that never waits costs nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import functools
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from quartermaster_engine.clock import SYSTEM_CLOCK, Clock
from quartermaster_engine.nodes import DeclaresLimitKeys, NodeExecutor
from quartermaster_engine.runner.compiled import CNode
from quartermaster_engine.stores.adapter import _done
from quartermaster_engine.stores.base import CountsWaiters, HoldsSlots, LimitsRate, LimitsTokens
from quartermaster_engine.types import GraphSpec

logger = logging.getLogger("quartermaster_engine.limits")

_FIRST_WAIT = 0.01
_MAX_WAIT = 0.25


@dataclass(frozen=True, slots=True)
class Rule:
    """A key's limits: activations at once, and activations started and LLM tokens
    used per ``per`` s."""

    max_in_flight: int | None = None
    max_requests: int | None = None
    per: float = 60.0
    max_tokens: int | None = None


#: A limited key of an activation and its rule.
KeyLimit = tuple[str, Rule]


class LocalSlots:
    """`HoldsSlots` within this process: the slots of an engine whose store keeps none."""

    def __init__(self) -> None:
        self._held: dict[str, dict[str, float]] = {}
        self._waiting: dict[str, dict[str, float]] = {}
        self._tokens: dict[str, deque[tuple[float, int]]] = {}
        self._started: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def take_request(self, key: str, limit: int, per: float, now: float) -> float:
        with self._lock:
            started = self._started.setdefault(key, deque())
            while started and started[0] <= now - per:
                started.popleft()
            if len(started) < limit:
                started.append(now)
                return 0.0
            return started[0] + per - now

    def requests_in_window(self, key: str, per: float, now: float) -> int:
        with self._lock:
            return sum(1 for t in self._started.get(key, ()) if t > now - per)

    def acquire_slot(
        self, key: str, holder: str, limit: int, now: float, expires_at: float
    ) -> bool:
        with self._lock:
            held = self._held.setdefault(key, {})
            for other in [h for h, t in held.items() if t <= now]:
                del held[other]
            if holder not in held and len(held) >= limit:
                return False
            held[holder] = expires_at
            return True

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
            waiting = self._waiting.setdefault(key, {})
            for other in [w for w, t in waiting.items() if t <= now]:
                del waiting[other]
            waiting[waiter] = expires_at

    def unmark_waiting(self, key: str, waiter: str) -> None:
        with self._lock:
            self._waiting.get(key, {}).pop(waiter, None)

    def waiting_counts(self, now: float) -> dict[str, int]:
        with self._lock:
            return _unexpired(self._waiting, now)


def tokens_wait(used: list[tuple[float, int]], limit: int, per: float, now: float) -> float:
    """0.0 if the tokens ``used`` in the window (``(at, tokens)``, oldest first) are
    fewer than ``limit``; else the seconds until enough of them leave it."""
    total = sum(n for _, n in used)
    if total < limit:
        return 0.0
    for at, n in used:
        total -= n
        if total < limit:
            return max(at + per - now, 0.0)
    return 0.0  # not reached: with every count gone, 0 < limit


def declared_keys(cnode: CNode, executor: NodeExecutor | None, graph: GraphSpec) -> list[str]:
    """The keys ``cnode``'s activations declare: its metadata ``limit_keys``, then its
    executor's (`DeclaresLimitKeys`), each once (limits and key budgets alike)."""
    keys: list[str] = []
    declared = cnode.node.metadata.get("limit_keys")
    if isinstance(declared, list):
        keys.extend(str(k) for k in declared)
    if isinstance(executor, DeclaresLimitKeys):
        try:
            keys.extend(executor.limit_keys(cnode.node, graph))
        except Exception as exc:  # its own pre-flight reports a bad node
            logger.warning("node %s declares no limit keys: %s", cnode.describe(), exc)
    return list(dict.fromkeys(keys))


def _unexpired(entries: dict[str, dict[str, float]], now: float) -> dict[str, int]:
    """Per key, how many of its entries expire after ``now`` (keys with none left out)."""
    counts = {k: sum(1 for t in e.values() if t > now) for k, e in entries.items()}
    return {k: n for k, n in counts.items() if n}


class KeyLimits:
    """An engine's limits per key and where their slots are kept."""

    def __init__(
        self,
        limits: Mapping[str, int | Rule],
        store: Any,
        ttl: float,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        #: The rule of each key or pattern (an int: that many in flight).
        self.limits = {k: Rule(v) if isinstance(v, int) else v for k, v in limits.items()}
        self.ttl = ttl
        #: The time of the windows (starts, tokens) and of their waits: the engine's
        #: clock (a `TestClock` in tests). Slots and waiters' marks use wall time.
        self.clock = clock
        local = LocalSlots()
        self.slots: Any = store if isinstance(store, HoldsSlots) else local
        self.rates: Any = store if isinstance(store, LimitsRate) else local
        self.waiters: Any = store if isinstance(store, CountsWaiters) else local
        self.tokens: Any = store if isinstance(store, LimitsTokens) else local
        #: Whether the store counts tokens (in each commit: `runner.usage_counts`).
        self.tokens_shared = isinstance(store, LimitsTokens)
        #: Whether a key's table has ``max_tokens``: committed records are counted.
        self.counts_tokens = any(r.max_tokens is not None for r in self.limits.values())
        #: Whether the slots are shared by every process using the store.
        self.shared = isinstance(store, HoldsSlots)
        self._of_node: dict[CNode, tuple[KeyLimit, ...]] = {}

    @classmethod
    def of(
        cls,
        limits: Mapping[str, int | Rule] | None,
        store: Any,
        ttl: float,
        clock: Clock = SYSTEM_CLOCK,
    ) -> KeyLimits | None:
        """The engine's key limits; None without any (nothing is checked then)."""
        return cls(limits, store, ttl, clock) if limits else None

    def limit_of(self, key: str) -> Rule | None:
        """``key``'s own limit, else that of the first pattern matching it, else None."""
        limit = self.limits.get(key)
        if limit is not None:
            return limit
        for pattern, value in self.limits.items():
            if self.matches(pattern, key):
                return value
        return None

    @staticmethod
    def matches(pattern: str, key: str) -> bool:
        """Whether ``key`` falls under the table ``pattern`` (``*`` and ``?`` wildcards)."""
        return fnmatch.fnmatchcase(key, pattern)

    def keys_of(
        self, cnode: CNode, executor: NodeExecutor, graph: GraphSpec
    ) -> tuple[KeyLimit, ...]:
        """The limited keys of ``cnode``'s activations (worked out once per node)."""
        known = self._of_node.get(cnode)
        if known is not None:
            return known
        limited = []
        for key in declared_keys(cnode, executor, graph):
            limit = self.limit_of(key)
            if limit is not None:
                limited.append((key, limit))
        # One order everywhere: no two holders wait for each other's slots.
        found = tuple(sorted(limited, key=lambda item: item[0]))
        if len(self._of_node) > 10_000:
            self._of_node.clear()
        self._of_node[cnode] = found
        return found

    @contextlib.asynccontextmanager
    async def held(self, keys: tuple[KeyLimit, ...]) -> AsyncIterator[None]:
        """Wait until every key in ``keys`` lets one more activation start in its
        window, then hold a slot of each key with ``max_in_flight`` until the block ends."""
        holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        for key, rule in keys:
            if rule.max_tokens is not None:
                await self._room(key, holder, rule.per, self._tokens_wait(key, rule))
            if rule.max_requests is not None:
                take = functools.partial(self.rates.take_request, key, rule.max_requests, rule.per)
                await self._room(key, holder, rule.per, take)
        taken: list[str] = []
        renewing: asyncio.Task[None] | None = None
        try:
            for key, rule in keys:
                if rule.max_in_flight is None:
                    continue
                await self._acquire(key, holder, rule.max_in_flight)
                taken.append(key)
            renewing = asyncio.ensure_future(self._renew(taken, holder))
            yield
        finally:
            if renewing is not None:
                renewing.cancel()
            for key in taken:
                try:
                    await _done(self.slots.release_slot(key, holder))
                except Exception as exc:  # it lapses after the ttl anyway
                    logger.warning("slot of %s not released (%s); it lapses", key, exc)

    async def _acquire(self, key: str, holder: str, limit: int) -> None:
        wait = _FIRST_WAIT
        marked: float | None = None
        try:
            while True:
                now = time.time()
                if await _done(self.slots.acquire_slot(key, holder, limit, now, now + self.ttl)):
                    return
                marked = await self._mark(key, holder, now, marked)
                await asyncio.sleep(wait * (0.5 + random.random()))
                wait = min(wait * 2, _MAX_WAIT)
        finally:
            if marked is not None:
                await self._unmark(key, holder)

    def _tokens_wait(self, key: str, rule: Rule) -> Callable[[float], Awaitable[float]]:
        limit = rule.max_tokens or 0

        async def wait(now: float) -> float:
            used = await _done(self.tokens.tokens_in_window(key, rule.per, now))
            return tokens_wait([(float(a), int(n)) for a, n in used], limit, rule.per, now)

        return wait

    async def _room(self, key: str, holder: str, per: float, ask: Callable[[float], Any]) -> None:
        """Wait until ``ask(now)`` (a window's check: 0 or less when it lets this
        activation start, else the seconds to wait) lets the activation start."""
        marked: float | None = None
        try:
            while True:
                now = self.clock.now()
                wait = float(await _done(ask(now)))
                if wait <= 0:
                    return
                marked = await self._mark(key, holder, time.time(), marked)
                # Woken at least every third of the ttl to mark the wait again.
                nap = min(wait, per, self.ttl / 3)
                await self.clock.sleep_until(now + nap + random.random() * _FIRST_WAIT)
        finally:
            if marked is not None:
                await self._unmark(key, holder)

    async def _mark(self, key: str, waiter: str, now: float, marked: float | None) -> float:
        """Record ``waiter`` as waiting for ``key`` the first time and again every
        third of the ttl; returns when it was last marked."""
        if marked is not None and now - marked < self.ttl / 3:
            return marked
        try:
            await _done(self.waiters.mark_waiting(key, waiter, now, now + self.ttl))
        except Exception as exc:  # only the count of waiters misses it
            logger.warning("wait for %s not recorded: %s", key, exc)
        return now

    async def _unmark(self, key: str, waiter: str) -> None:
        try:
            await _done(self.waiters.unmark_waiting(key, waiter))
        except Exception as exc:  # it lapses after the ttl anyway
            logger.warning("wait for %s not cleared (%s); it lapses", key, exc)

    async def _renew(self, keys: list[str], holder: str) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            for key in keys:
                try:
                    kept = await _done(self.slots.renew_slot(key, holder, time.time() + self.ttl))
                except Exception as exc:
                    logger.warning("slot of %s not renewed: %s", key, exc)
                    continue
                if not kept:
                    logger.warning("slot of %s lapsed while held (%s)", key, holder)

    async def in_use(self) -> dict[str, int]:
        """Slots held now per key (of every process, with a store that `HoldsSlots`)."""
        counts: dict[str, int] = await _done(self.slots.slots_in_use(time.time()))
        return counts

    async def waiting(self) -> dict[str, int]:
        """Activations waiting now per key (of every process, with a store that
        `CountsWaiters`)."""
        counts: dict[str, int] = await _done(self.waiters.waiting_counts(time.time()))
        return counts
