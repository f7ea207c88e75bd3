"""A flow's lifecycle phase, and stopping what runs.

A run is RUNNING until something ends it; the first cause that ends it is not
overwritten by a milder one: a store failure (ABORTED) outranks a requested
stop (STOPPING), which outranks a node failure that halts the flow (FAILING).
`finish` reads the phase once to decide the flow's status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from enum import IntEnum
from typing import Any


class Phase(IntEnum):
    """Where a run stands; a higher phase is never replaced by a lower one."""

    RUNNING = 0
    FAILING = 1
    STOPPING = 2
    ABORTED = 3


class Wake:
    """What a concurrent driver waits on: `asyncio.Event` for its one waiter, without
    the Event's deque of waiters (760 bytes, kept per flow in flight)."""

    __slots__ = ("_is_set", "_waiter")

    def __init__(self) -> None:
        self._is_set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._is_set = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._is_set = False

    async def wait(self) -> None:
        if self._is_set:
            return
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None


class RunControl:
    """The phase of one run and what must hear when it halts."""

    __slots__ = (
        "_cancellable",
        "_inline",
        "abort",
        "cancel_requested",
        "concurrent",
        "driver",
        "on_halt",
        "phase",
        "stop_reason",
        "wake",
    )

    def __init__(self, concurrent: bool) -> None:
        self.concurrent = concurrent
        self.phase = Phase.RUNNING
        #: Read by `ExecutionContext.cancelled`; written from any thread.
        self.cancel_requested = False
        self.stop_reason = ""
        #: Why the run was aborted (store failure, lost lease, internal error).
        self.abort: BaseException | None = None
        self.driver: asyncio.Task[Any] | None = None
        self.wake: Wake | None = None
        self._cancellable: set[asyncio.Task[Any]] = set()
        self._inline = False
        #: Called once whenever the run halts (stops child flows, mutes tokens).
        self.on_halt: Callable[[], None] | None = None

    @property
    def halted(self) -> bool:
        """Nothing new may start."""
        return self.phase is not Phase.RUNNING

    def halt(self, phase: Phase) -> None:
        """No new activation starts; running executors are cancelled (async ones) or
        told through ``context.cancelled`` (blocking ones)."""
        if phase > self.phase:
            self.phase = phase
        self.cancel_requested = True
        if self.on_halt is not None:
            self.on_halt()
        for task in list(self._cancellable):
            task.cancel()
        if self._inline and self.driver is not None:
            self.driver.cancel()
        if self.wake is not None:
            self.wake.set()

    def fail_with(self, exc: BaseException) -> None:
        """Abort the run because of ``exc`` (the first cause is kept)."""
        if self.abort is None:
            self.abort = exc
        self.halt(Phase.ABORTED)

    def request_stop(self, reason: str) -> bool:
        """Stop the run; False if it was stopping already. Must run on the flow's loop."""
        self.cancel_requested = True
        if self.phase >= Phase.STOPPING:
            return False
        self.stop_reason = reason
        self.halt(Phase.STOPPING)
        return True

    def stop_if_requested(self) -> bool:
        """Whether the run is halted; a stop asked from another thread (only the
        flag is set there) takes effect here."""
        if self.cancel_requested and self.phase is Phase.RUNNING:
            self.request_stop(self.stop_reason or "stop() called")
        return self.phase is not Phase.RUNNING

    def resume(self) -> None:
        """A paused run of a non-durable store continues in this process."""
        self.phase = Phase.RUNNING
        self.cancel_requested = False

    async def cancellable(self, awaitable: Any) -> Any:
        """Await an executor call where a stop may cancel it: the activation's own
        task under concurrent dispatchers, the driver itself when running inline."""
        task = self.guard()
        try:
            return await awaitable
        finally:
            self.unguard(task)

    def guard(self) -> asyncio.Task[Any] | None:
        """From now until `unguard`, a stop cancels what awaits here (`cancellable`
        without a coroutine of its own, for the executor call); returns the token."""
        task = asyncio.current_task() if self.concurrent else None
        if task is not None:
            self._cancellable.add(task)
        else:
            self._inline = True
        return task

    def unguard(self, task: asyncio.Task[Any] | None) -> None:
        """End what `guard` began (``task``: what it returned)."""
        if task is not None:
            self._cancellable.discard(task)
        else:
            self._inline = False

    def forget(self, task: asyncio.Task[Any]) -> None:
        """A finished activation task no longer needs cancelling."""
        self._cancellable.discard(task)
