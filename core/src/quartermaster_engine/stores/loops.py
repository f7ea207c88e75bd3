"""`PerLoop`: one loop-bound resource (a client, a connection pool) per event loop.

Async drivers' connections belong to the loop that opened them, and the
engine calls a store from several loops (a script's thread loop, the engine's
background loop, the caller's loop under ``run_async``, one ``asyncio.run``
after another). So a store keeps one resource per loop, made on first use.

Each resource is tied to its loop by a small async generator parked on that
loop: asyncio finalizes the async generators of a loop before closing it
(``asyncio.run`` and the engine's loops do), which closes the resource while
its loop can still run the shutdown.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable
from contextlib import suppress
from typing import Generic, Protocol, TypeVar


class Closable(Protocol):
    """A resource `PerLoop` can hold: closed with ``await resource.aclose()``."""

    async def aclose(self) -> None: ...


R = TypeVar("R", bound=Closable)


class _Entry(Generic[R]):
    __slots__ = ("guard", "loop", "resource")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, resource: R, guard: AsyncGenerator[None, None]
    ) -> None:
        self.loop = loop
        self.resource = resource
        self.guard = guard


class PerLoop(Generic[R]):
    """Resources by event loop, made with ``factory`` on first use in a loop."""

    def __init__(self, factory: Callable[[], R]) -> None:
        self._factory = factory
        self._entries: dict[asyncio.AbstractEventLoop, _Entry[R]] = {}
        self._lock = threading.Lock()

    def get(self) -> R:
        """The running loop's resource (call from a coroutine)."""
        loop = asyncio.get_running_loop()
        entry = self._entries.get(loop)
        if entry is None:
            entry = self._add(loop)
        return entry.resource

    def _add(self, loop: asyncio.AbstractEventLoop) -> _Entry[R]:
        resource = self._factory()
        guard = self._guard(loop, resource)
        # Run the guard up to its first yield now: the loop's first-iteration
        # hook registers it, so the loop's shutdown will finalize it.
        step = guard.__anext__()
        with suppress(StopIteration):
            step.send(None)
        entry = _Entry(loop, resource, guard)
        with self._lock:
            for dead in [lp for lp in self._entries if lp.is_closed()]:
                del self._entries[dead]
            self._entries[loop] = entry
        return entry

    async def _guard(
        self, loop: asyncio.AbstractEventLoop, resource: R
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._lock:
                entry = self._entries.get(loop)
                if entry is not None and entry.resource is resource:
                    del self._entries[loop]
            await resource.aclose()

    async def close(self) -> None:
        """Close every resource: this loop's now, those of loops running in other
        threads as soon as their loop gets to it (without waiting: that loop may be
        blocked on this one). Resources of idle loops close when their loop shuts down."""
        current = asyncio.get_running_loop()
        with self._lock:
            entries = list(self._entries.values())
        for entry in entries:
            loop = entry.loop
            if loop is current:
                await entry.guard.aclose()
            elif loop.is_running():
                with suppress(RuntimeError):  # closed meanwhile
                    asyncio.run_coroutine_threadsafe(entry.guard.aclose(), loop)
            elif loop.is_closed():
                with self._lock:
                    self._entries.pop(loop, None)

    def __len__(self) -> int:
        return len(self._entries)
