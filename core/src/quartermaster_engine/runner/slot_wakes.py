"""Waking this process's waiters for a key's slot when this process frees one.

A waiter for a slot (`KeyLimits._acquire`) sleeps between asks of the store: 10 ms
per place in the key's line, at most 250 ms. When a slot of the key is freed in this
process (its holder's release, or the commit that gave it back), the nearest of
this process's waiters of the key is woken at once to ask again, instead of
sleeping out its wait. Waiters of other processes still learn it at their next ask
(the store's line keeps the order either way), and so does a waiter whose wake was
missed: a wake only saves latency. Waiters of any event loop and thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class Wake:
    """One waiter's wake: its last place in the key's line, and the future it sleeps on."""

    __slots__ = ("future", "loop", "place")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.place = 0


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class SlotWakes:
    """This process's waiters per key, woken when it frees a slot of the key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, list[Wake]] = {}

    def watch(self, key: str) -> Wake:
        """Register a waiter of ``key`` (before it asks the store: a slot freed after the
        ask wakes it)."""
        wake = Wake(asyncio.get_running_loop())
        with self._lock:
            self._waiting.setdefault(key, []).append(wake)
        return wake

    def forget(self, key: str, wake: Wake) -> None:
        with self._lock:
            waiting = self._waiting.get(key)
            if waiting is not None:
                with contextlib.suppress(ValueError):
                    waiting.remove(wake)
                if not waiting:
                    del self._waiting[key]

    def freed(self, keys: list[str]) -> None:
        """A slot of each of ``keys`` was freed: wake the waiters nearest the front (of
        this process) to ask again; the others keep sleeping, so a release costs one
        ask, not one per waiter."""
        if not self._waiting:
            return
        with self._lock:
            woken: list[Wake] = []
            for key in keys:
                # Only waiters the store refused (a place): one about to ask needs no wake.
                places = [w.place for w in self._waiting.get(key, ()) if w.place]
                if places:
                    front = min(places)
                    woken.extend(w for w in self._waiting[key] if w.place == front)
        for wake in woken:
            wake.loop.call_soon_threadsafe(_wake, wake.future)

    @staticmethod
    async def nap(wake: Wake, seconds: float) -> None:
        """Sleep ``seconds``, or less if a slot of the key is freed in this process."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(wake.future), seconds)


__all__ = ["SlotWakes", "Wake"]
