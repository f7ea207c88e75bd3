"""One blocking call in flight, and the way its outcome gets back to its event loop.

A call is made on an event loop, runs in a worker thread and is settled on the
loop again: asyncio futures are not thread-safe, so workers never touch them.
Each loop has one `Inbox`; workers append finished calls to it and wake the
loop once per batch rather than once per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from qm_dispatch_thread.errors import DispatcherShutdownError
from quartermaster_engine.context.execution_context import ExecutionContext

if TYPE_CHECKING:
    from qm_dispatch_thread.pool import TypeGate

logger = logging.getLogger("qm_dispatch_thread")


def context_of(fn: Callable[[], Any]) -> ExecutionContext | None:
    """The execution context a call made by the engine carries, if any.

    The scheduler hands ``run_blocking`` a `BlockingCall` carrying its context; the
    context tells whether the call's flow is stopping.
    """
    context = getattr(fn, "context", None)
    return context if isinstance(context, ExecutionContext) else None


class Work:
    """A blocking call: made on a loop, run in a worker thread, settled on the loop."""

    __slots__ = (
        "context",
        "error",
        "fn",
        "future",
        "gate",
        "inbox",
        "result",
        "skipped",
    )

    def __init__(
        self,
        fn: Callable[[], Any],
        future: asyncio.Future[Any],
        inbox: Inbox,
        gate: TypeGate | None,
        context: ExecutionContext | None,
    ) -> None:
        self.fn = fn
        self.future = future
        self.inbox = inbox
        self.gate = gate
        self.context = context
        self.result: Any = None
        self.error: BaseException | None = None
        #: The call never ran: nobody awaited it any more, or its flow was stopping.
        self.skipped = False

    def execute(self) -> None:
        """Run the call in the current (worker) thread, unless it is no longer wanted."""
        context = self.context
        # Cancelling the awaiting task cancels the future at once, on the loop's
        # thread; reading that state from here is a plain read of one field. A
        # stopping flow starts nothing new, even when a worker frees up before the
        # flow's loop has cancelled its queued calls.
        if self.future.cancelled() or (context is not None and context.cancelled):
            self.skipped = True
            return
        try:
            self.result = self.fn()
        except StopIteration as exc:
            # An asyncio future refuses StopIteration (it would end a generator).
            self.error = RuntimeError(f"a blocking executor raised StopIteration: {exc!r}")
        except BaseException as exc:
            self.error = exc

    def drop(self) -> None:
        """Never run this call (the dispatcher is shutting down without waiting): its
        flow is asked to stop, and its caller gets `DispatcherShutdownError`."""
        self.stop_flow()
        where = f" of node {self.context.current_node.describe()}" if self.context else ""
        self.error = DispatcherShutdownError(
            f"the thread dispatcher was shut down (wait=False) before the call{where} started"
        )

    def stop_flow(self) -> None:
        """Ask the flow this call belongs to, if any, to stop (from any thread)."""
        if self.context is not None:
            self.context.stop_flow("the thread dispatcher was shut down")

    def settle(self) -> None:
        """Hand the outcome to the awaiting coroutine (on the loop's thread)."""
        future = self.future
        if future.done():
            return
        if self.error is not None:
            future.set_exception(self.error)
        elif self.skipped:
            future.cancel()
        else:
            future.set_result(self.result)


class Inbox:
    """Finished calls of one event loop, handed back to it in batches."""

    __slots__ = ("_done", "_loop", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weak: the inbox is the value of a dict keyed weakly by its loop.
        self._loop = weakref.ref(loop)
        self._done: deque[Work] = deque()
        self._scheduled = False

    def post(self, work: Work) -> None:
        """Queue a finished call for its loop; safe from any thread."""
        self._done.append(work)
        if self._scheduled:
            return  # a drain is already on its way and will see this call
        self._scheduled = True
        loop = self._loop()
        if loop is None:
            return
        # A closed loop raises RuntimeError: nothing awaits its calls any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        # Cleared before draining: a call posted meanwhile either is drained here
        # or schedules the next drain. A spare drain finds nothing and costs nothing.
        self._scheduled = False
        done = self._done
        while done:
            work = done.popleft()
            try:
                work.settle()
            except Exception:  # one bad outcome must not strand the others
                logger.exception("could not settle a blocking call")
