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
from collections.abc import AsyncIterator, Mapping
from typing import Any

from quartermaster_engine.nodes import DeclaresLimitKeys, NodeExecutor
from quartermaster_engine.runner.compiled import CNode
from quartermaster_engine.stores.adapter import _done
from quartermaster_engine.stores.base import HoldsSlots
from quartermaster_engine.types import GraphSpec

logger = logging.getLogger("quartermaster_engine.limits")

#: A limited key of an activation and its limit.
KeyLimit = tuple[str, int]
_FIRST_WAIT = 0.01
_MAX_WAIT = 0.25


class LocalSlots:
    """`HoldsSlots` within this process: the slots of an engine whose store keeps none."""

    def __init__(self) -> None:
        self._held: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

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

    def __init__(self, limits: Mapping[str, int], store: Any, ttl: float) -> None:
        self.limits = dict(limits)
        self.ttl = ttl
        self.slots: Any = store if isinstance(store, HoldsSlots) else LocalSlots()
        #: Whether the slots are shared by every process using the store.
        self.shared = isinstance(store, HoldsSlots)
        self._of_node: dict[CNode, tuple[KeyLimit, ...]] = {}

    @classmethod
    def of(cls, limits: Mapping[str, int] | None, store: Any, ttl: float) -> KeyLimits | None:
        """The engine's key limits; None without any (nothing is checked then)."""
        return cls(limits, store, ttl) if limits else None

    def limit_of(self, key: str) -> int | None:
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
        found = tuple(sorted(limited))  # one order everywhere: no two holders deadlock
        if len(self._of_node) > 10_000:
            self._of_node.clear()
        self._of_node[cnode] = found
        return found

    @contextlib.asynccontextmanager
    async def held(self, keys: tuple[KeyLimit, ...]) -> AsyncIterator[None]:
        """Hold a slot of every key in ``keys`` (waiting for each) until the block ends."""
        holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        taken: list[str] = []
        renewing: asyncio.Task[None] | None = None
        try:
            for key, limit in keys:
                await self._acquire(key, holder, limit)
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
