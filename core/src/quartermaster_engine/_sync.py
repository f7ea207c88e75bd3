"""Calling the async core from synchronous code, in scripts and inside running loops.

From a thread with no running event loop, coroutines run on a loop owned by
that thread and reused across calls (a fresh loop per call would cost more
than a whole small flow). From inside a running loop (a notebook, a web
handler) a blocking call cannot use that loop, so the coroutine runs on the
engine's background loop thread and the caller waits for it.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import weakref
from collections.abc import Coroutine
from contextlib import suppress
from typing import Any, TypeVar

T = TypeVar("T")

_local = threading.local()
_portal_lock = threading.Lock()
_portal_loop: asyncio.AbstractEventLoop | None = None


def _thread_loop() -> asyncio.AbstractEventLoop:
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _local.loop = loop
        thread = threading.current_thread()
        if thread is threading.main_thread():
            atexit.register(_close_loop, loop)
        else:
            # Close it when the thread is gone, so clients bound to it (store
            # connections) are released instead of lingering to process exit.
            weakref.finalize(thread, _close_loop, loop)
    return loop


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Shut ``loop`` down cleanly; called at exit or when its thread is collected,
    which may happen inside another running loop (then it can only be closed)."""
    if loop.is_running() or loop.is_closed():
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        with suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        with suppress(Exception):
            loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()


def _portal() -> asyncio.AbstractEventLoop:
    global _portal_loop
    with _portal_lock:
        if _portal_loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="quartermaster-engine-loop", daemon=True
            )
            thread.start()
            _portal_loop = loop
        return _portal_loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from synchronous code and return its result."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
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
    future = asyncio.run_coroutine_threadsafe(coro, _portal())
    return future.result()
