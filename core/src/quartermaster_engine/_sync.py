"""Calling the async core from synchronous code, in scripts and inside running loops.

From a thread with no running event loop, coroutines run on a loop owned by
that thread and reused across calls (a fresh loop per call would cost more
than a whole small flow). From inside a running loop (a notebook, a web
handler) a blocking call cannot use that loop, so the coroutine runs on the
engine's background loop thread and the caller waits for it. Code that the
background loop itself runs (an executor of a flow that ``run()`` started
inside a running loop, calling a synchronous store method) cannot wait on that
loop either: its coroutine runs on a second background loop (and so on).

A process forked from one that ran flows (gunicorn ``--preload``,
multiprocessing) inherits those loops but not their threads: a background loop
no thread runs would never answer. So a child forgets them (`os.register_at_fork`)
and makes its own on first use; the stores' per-loop connections follow (one per
loop), and the parent's loops are never touched by the child, not even at exit.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import weakref
from collections.abc import Coroutine
from contextlib import suppress
from typing import Any, TypeVar

T = TypeVar("T")

_local = threading.local()
_portal_lock = threading.Lock()
#: The engine's background loops (see `_portal`), each on a daemon thread.
_portals: list[asyncio.AbstractEventLoop] = []


def _thread_loop() -> asyncio.AbstractEventLoop:
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _local.loop = loop
        thread = threading.current_thread()
        if thread is threading.main_thread():
            atexit.register(_close_loop, loop, os.getpid())
        else:
            # Close it when the thread is gone, so clients bound to it (store
            # connections) are released instead of lingering to process exit.
            weakref.finalize(thread, _close_loop, loop, os.getpid())
    return loop


def _close_loop(loop: asyncio.AbstractEventLoop, pid: int | None = None) -> None:
    """Shut ``loop`` down cleanly; called at exit or when its thread is collected,
    which may happen inside another running loop (then it can only be closed).
    A loop of process ``pid`` is left alone in a forked child: shutting it down
    there would close the connections (sockets) the parent still uses."""
    if loop.is_running() or loop.is_closed() or (pid is not None and pid != os.getpid()):
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        with suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        with suppress(Exception):
            loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()


def _portal(running: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop:
    """The engine's background loop; for code that one of those loops runs, the next
    one (started on first need), since waiting on its own loop would deadlock it.
    Each loop only ever waits on a later one, so waits never form a cycle."""
    with _portal_lock:
        index = next((i + 1 for i, loop in enumerate(_portals) if loop is running), 0)
        while len(_portals) <= index:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever,
                name=f"quartermaster-engine-loop-{len(_portals)}",
                daemon=True,
            )
            thread.start()
            _portals.append(loop)
        return _portals[index]


def _forget_loops_after_fork() -> None:
    """In a forked child: the parent's loops (this thread's and the background
    ones) stay as they are, unused; new ones are made on first use."""
    global _local, _portal_lock
    _local = threading.local()
    _portal_lock = threading.Lock()
    _portals.clear()


os.register_at_fork(after_in_child=_forget_loops_after_fork)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from synchronous code and return its result."""
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is None:
        loop = _thread_loop()
        task = loop.create_task(coro)
        try:
            return loop.run_until_complete(task)
        except BaseException:
            # KeyboardInterrupt and friends: do not leave the flow running in the
            # background of this thread's loop.
            if not task.done():
                task.cancel()
                with suppress(BaseException):
                    loop.run_until_complete(task)
            raise
    return asyncio.run_coroutine_threadsafe(coro, _portal(running)).result()
