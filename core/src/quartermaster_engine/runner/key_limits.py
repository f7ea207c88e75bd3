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

``max_requests`` per ``per`` seconds counts the starts of a key in a sliding
window, in the store when it `LimitsRate` (else in this process); a start that
finds the window full sleeps until its oldest start leaves it, then asks again.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from quartermaster_engine.nodes import DeclaresLimitKeys, NodeExecutor
from quartermaster_engine.runner.compiled import CNode
from quartermaster_engine.stores.adapter import _done
from quartermaster_engine.stores.base import HoldsSlots, LimitsRate
from quartermaster_engine.types import GraphSpec

logger = logging.getLogger("quartermaster_engine.limits")

_FIRST_WAIT = 0.01
_MAX_WAIT = 0.25


@dataclass(frozen=True, slots=True)
class Rule:
    """A key's limits: activations at once, and activations started per ``per`` s."""

    max_in_flight: int | None = None
    max_requests: int | None = None
    per: float = 60.0


#: A limited key of an activation and its rule.
KeyLimit = tuple[str, Rule]


class LocalSlots:
    """`HoldsSlots` within this process: the slots of an engine whose store keeps none."""

    def __init__(self) -> None:
        self._held: dict[str, dict[str, float]] = {}
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
            counts = {k: sum(1 for t in h.values() if t > now) for k, h in self._held.items()}
        return {k: n for k, n in counts.items() if n}


class KeyLimits:
    """An engine's limits per key and where their slots are kept."""

    def __init__(self, limits: Mapping[str, int | Rule], store: Any, ttl: float) -> None:
        #: The rule of each key or pattern (an int: that many in flight).
        self.limits = {k: Rule(v) if isinstance(v, int) else v for k, v in limits.items()}
        self.ttl = ttl
        local = LocalSlots()
        self.slots: Any = store if isinstance(store, HoldsSlots) else local
        self.rates: Any = store if isinstance(store, LimitsRate) else local
        #: Whether the slots are shared by every process using the store.
        self.shared = isinstance(store, HoldsSlots)
        self._of_node: dict[CNode, tuple[KeyLimit, ...]] = {}

    @classmethod
    def of(
        cls, limits: Mapping[str, int | Rule] | None, store: Any, ttl: float
    ) -> KeyLimits | None:
        """The engine's key limits; None without any (nothing is checked then)."""
        return cls(limits, store, ttl) if limits else None

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
        keys: list[str] = []
        declared = cnode.node.metadata.get("limit_keys")
        if isinstance(declared, list):
            keys.extend(str(k) for k in declared)
        if isinstance(executor, DeclaresLimitKeys):
            try:
                keys.extend(executor.limit_keys(cnode.node, graph))
            except Exception as exc:  # its own pre-flight reports a bad node
                logger.warning("node %s declares no limit keys: %s", cnode.describe(), exc)
        limited = []
        for key in dict.fromkeys(keys):
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
        for key, rule in keys:
            if rule.max_requests is not None:
                await self._start(key, rule.max_requests, rule.per)
        holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
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
        while True:
            now = time.time()
            if await _done(self.slots.acquire_slot(key, holder, limit, now, now + self.ttl)):
                return
            await asyncio.sleep(wait * (0.5 + random.random()))
            wait = min(wait * 2, _MAX_WAIT)

    async def _start(self, key: str, limit: int, per: float) -> None:
        """Count one start of ``key`` in its window, waiting until the window has room."""
        while True:
            wait = float(await _done(self.rates.take_request(key, limit, per, time.time())))
            if wait <= 0:
                return
            await asyncio.sleep(min(wait, per) + random.random() * _FIRST_WAIT)

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
