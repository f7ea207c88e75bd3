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
frees its slot within the ttl. Slots are given first come, first served: a
refused taker is queued in the key's line in the store (`HoldsSlots.take_slot`)
and asks again, sooner the nearer the front (10 ms per place, at most 250 ms,
jittered); the wait holds the calling task, not a lease. Under `giving_back` (a
Celery worker) it asks once and raises `LimitWait` instead, keeping its place.

Windows (below) run on the engine's clock (a `TestClock` in tests); slots and
waiters' marks on wall time, which every process shares.

``max_requests`` per ``per`` seconds counts the starts of a key in a sliding
window, in the store when it `LimitsRate` (else in this process); a start that
finds the window full queues in the key's window line (`window_line`) and, once
first in it, sleeps until its oldest start leaves the window, then asks again.

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
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from quartermaster_engine.clock import SYSTEM_CLOCK, Clock
from quartermaster_engine.nodes import DeclaresLimitKeys, NodeExecutor
from quartermaster_engine.runner.compiled import CNode
from quartermaster_engine.runner.held_slots import HeldSlots
from quartermaster_engine.runner.limit_waits import GIVES_BACK, GiveBack, LimitWait
from quartermaster_engine.runner.local_slots import LocalSlots
from quartermaster_engine.runner.slot_wakes import SlotWakes
from quartermaster_engine.runner.window_line import LineThenWindow, by_key, line_of
from quartermaster_engine.stores.adapter import _done
from quartermaster_engine.stores.base import (
    CountsWaiters,
    HoldsSlots,
    KeepsWindowLines,
    LimitsRate,
    LimitsTokens,
    ReleasesSlotsInCommit,
)
from quartermaster_engine.stores.records import WindowAsk
from quartermaster_engine.types import GraphSpec

logger = logging.getLogger("quartermaster_engine.limits")

_FIRST_WAIT = 0.01
_MAX_WAIT = 0.25
#: A task given back waits this long per place in the key's line (up to ttl / 3).
_GIVE_BACK_FIRST = 0.1


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


def _holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


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
        #: The windows' checks in their line's order (`window_line`).
        self.windows: Any = (
            store
            if isinstance(store, KeepsWindowLines)
            else local
            if not isinstance(store, HoldsSlots | LimitsRate | LimitsTokens)
            else LineThenWindow(self.slots, self.rates, self.tokens, self.waiters)
        )
        #: Whether the store counts tokens (in each commit: `runner.usage_counts`).
        self.tokens_shared = isinstance(store, LimitsTokens)
        #: Whether a key's table has ``max_tokens``: committed records are counted.
        self.counts_tokens = any(r.max_tokens is not None for r in self.limits.values())
        #: Whether the slots are shared by every process using the store.
        self.shared = isinstance(store, HoldsSlots)
        self._releases: ReleasesSlotsInCommit | None = (
            store if isinstance(store, ReleasesSlotsInCommit) else None
        )
        self._of_node: dict[CNode, tuple[KeyLimit, ...]] = {}
        #: This process's waiters for slots, woken when it frees one (`slot_wakes`).
        self.wakes = SlotWakes()

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

    def in_commit(self) -> bool:
        """Whether an accepted commit gives its activation's slots up itself
        (`ReleasesSlotsInCommit`), asked of the store each time."""
        releases = self._releases
        return releases is not None and bool(releases.releases_slots_in_commit())

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
    async def held(self, keys: tuple[KeyLimit, ...]) -> AsyncIterator[HeldSlots]:
        """Wait until every key in ``keys`` lets one more activation start in its
        window, then hold a slot of each key with ``max_in_flight`` until the block
        ends, or until the commit they were handed over to (`HeldSlots.handed`).

        Under `giving_back` the slots are taken first and the windows asked after:
        a task given back for a slot then counts no start in a window (it would
        count one each time it came back); refused by a window, it gives its
        slots up again."""
        back = GIVES_BACK.get()
        holder = back.waiter if back is not None else _holder_id()
        if back is None:
            await self._windows(keys, holder, None)
        slots = HeldSlots(self, holder)
        renewing: asyncio.Task[None] | None = None
        try:
            for key, rule in keys:
                if rule.max_in_flight is None:
                    continue
                await self._acquire(key, holder, rule.max_in_flight, back is not None)
                slots.keys.append(key)
            if back is not None:
                await self._windows(keys, holder, back)
            renewing = asyncio.ensure_future(self.renew(slots.keys, holder))
            yield slots
        finally:
            if renewing is not None:
                renewing.cancel()
            if not slots.handed:
                await slots.release()

    async def _windows(
        self, keys: tuple[KeyLimit, ...], holder: str, back: GiveBack | None
    ) -> None:
        """Wait until each key's windows (tokens, starts) let one more start."""
        windows = self.windows
        for key, rule in keys:
            if rule.max_tokens is not None:
                # A starts window of the same line asked next keeps the place.
                leave = rule.max_requests is None
                check = functools.partial(windows.take_tokens_in_line, leave=leave)
                await self._room(key, holder, rule.max_tokens, rule.per, check, back)
            if rule.max_requests is not None:
                check = windows.take_request_in_line
                await self._room(key, holder, rule.max_requests, rule.per, check, back)

    async def _acquire(self, key: str, holder: str, limit: int, gives_back: bool) -> None:
        """Take a slot of ``key`` in first-come order (the store's line of the key),
        asking again sooner the nearer the front; ``gives_back``: ask once and raise
        `LimitWait` (keeping the place) when refused."""
        queued = False
        wake = None if gives_back else self.wakes.watch(key)  # before the ask
        try:
            while True:
                now = time.time()
                take = self.slots.take_slot(key, holder, limit, now, now + self.ttl)
                place = int(await _done(take))
                queued = place > 0
                if not queued:
                    return
                if wake is None:
                    raise LimitWait(key, min(_GIVE_BACK_FIRST * place, self.ttl / 3))
                wake.place = place
                wait = min(_FIRST_WAIT * place, _MAX_WAIT)
                await self.wakes.nap(wake, wait * (0.5 + random.random()))
                if wake.future.done():  # woken: watch afresh before asking again
                    self.wakes.forget(key, wake)
                    wake = self.wakes.watch(key)
        finally:
            if wake is not None:
                self.wakes.forget(key, wake)
            if queued and not gives_back:  # cancelled: out of the line
                await self._unmark(key, holder)

    async def _room(
        self,
        key: str,
        holder: str,
        limit: int,
        per: float,
        check: Callable[[WindowAsk], Any],
        back: GiveBack | None,
    ) -> None:
        """Wait until ``check`` (a window's check in its line's order,
        `KeepsWindowLines`: ``(place, wait)``) lets the activation start, first
        come, first served: the store queues it in the key's window line when others
        are ahead of it or the window is full, and only the first in line is asked the
        window. The first in line sleeps until the window said room frees (at most a
        third of the ttl: each ask marks it again); the others ask again sooner the
        nearer the front. With ``back``: ask once, and when it may not start yet, keep
        its place in the line and raise `LimitWait`."""
        line = line_of(key)
        queued = False
        try:
            while True:
                wall = time.time()
                now = self.clock.now()
                ask = WindowAsk(key, line, holder, limit, per, now, wall, wall + self.ttl)
                place, wait = await _done(check(ask))
                if int(place) == 0:
                    queued = False  # the store took it out of the line
                    return
                queued = True
                place = int(place)
                if place == 1:
                    wait = min(float(wait), per, self.ttl / 3)
                elif back is not None:
                    wait = min(_GIVE_BACK_FIRST * place, self.ttl / 3)
                else:
                    wait = min(_FIRST_WAIT * place, _MAX_WAIT)
                if back is not None:
                    queued = False  # it still waits, in the broker: its place stays
                    raise LimitWait(key, wait)
                if place == 1:
                    await self.clock.sleep_until(now + wait + random.random() * _FIRST_WAIT)
                else:
                    await asyncio.sleep(wait * (0.5 + random.random()))
        finally:
            if queued:
                await self._unmark(line, holder)

    async def _unmark(self, key: str, waiter: str) -> None:
        try:
            await _done(self.waiters.unmark_waiting(key, waiter))
        except Exception as exc:  # it lapses after the ttl anyway
            logger.warning("wait for %s not cleared (%s); it lapses", key, exc)

    async def renew(self, keys: list[str], holder: str) -> None:
        """Renew ``holder``'s slots of ``keys`` every third of the ttl, until cancelled."""
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
        return by_key(counts)
