"""Blocking executor calls in daemon worker threads, which a timeout may abandon.

`asyncio.to_thread` uses the loop's default executor, whose threads the
interpreter joins at exit: a call abandoned by a ``timeout`` that never returns
kept a plain script from ever exiting. The engine's own dispatchers (``sync``
for nodes with a timeout, ``async`` for every blocking call) run blocking calls
here instead:

- a call runs in a daemon thread, with the caller's `contextvars` context;
- when its node times out (or its flow is stopped) the awaiting task stops
  waiting, the node fails (or is cancelled) at once, and the call is
  *abandoned*: it runs on in its thread until it returns, its result is
  dropped, and the thread is reused afterwards; it does not keep the process
  alive: at exit, the interpreter does not wait for it;
- idle threads end after `IDLE_SECONDS`; a new call starts a thread when none
  is idle, so an abandoned call never holds up the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: Seconds an idle worker waits for a call before it ends.
IDLE_SECONDS = 30.0

_Job = tuple[Callable[[], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class _Workers:
    """Daemon threads taking calls from one queue; one more starts when none is idle."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._count = 0

    def submit(self, job: _Job) -> None:
        with self._lock:
            start = self._idle == 0
            if start:
                self._count += 1
                name = f"{self._prefix}-{self._count}"
            else:
                self._idle -= 1
        self._jobs.put(job)
        if start:
            threading.Thread(target=self._work, name=name, daemon=True).start()

    def _work(self) -> None:
        jobs = self._jobs
        while True:
            try:
                fn, loop, future = jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:
                        self._idle -= 1
                        return
                continue  # a call was handed to this thread as it timed out
            try:
                value = fn()
            except BaseException as exc:
                _settle(loop, future, exc, None)
            else:
                _settle(loop, future, None, value)
            with self._lock:
                self._idle += 1


def _settle(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    error: BaseException | None,
    value: Any,
) -> None:
    def apply() -> None:
        if future.done():  # abandoned: timed out or cancelled
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    # A closed loop (RuntimeError): nobody waits for this call any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(apply)


_workers = _Workers("qm-blocking")


async def run_in_daemon_thread(fn: Callable[[], T]) -> T:
    """Run ``fn()`` in a daemon worker thread and return its result (or raise its
    error). Cancelling the awaiting task abandons the call (see the module docs)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()
    _workers.submit((lambda: context.run(fn), loop, future))
    result: T = await future
    return result
