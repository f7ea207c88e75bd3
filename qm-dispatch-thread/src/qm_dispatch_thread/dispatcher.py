"""`ThreadDispatcher`: blocking node executors in a pool of worker threads."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast
from uuid import UUID

from qm_dispatch_thread.errors import DispatcherShutdownError
from qm_dispatch_thread.pool import WorkerPool
from qm_dispatch_thread.settings import ThreadDispatcherSettings, default_max_workers
from qm_dispatch_thread.work import Inbox, Work, context_of
from quartermaster_engine.dispatchers.dispatched import DispatchedCalls
from quartermaster_engine.types import GraphNode, NodeType

T = TypeVar("T")

#: Seconds a call of a stopping flow waits for the stop to cancel it.
_STOP_GRACE = 1.0


class ThreadDispatcher:
    """Runs activations as concurrent asyncio tasks and blocking ``def`` executors in
    its own pool of ``max_workers`` threads; ``async def`` executors stay on the loop.

    ``type_limits`` maps node types (``"Instruction1"``, ``"acme.Scraper"``, or a
    `NodeType`) to the most calls of that type running at once, say for an API
    with a rate limit; calls over the limit wait without holding a thread.

    One dispatcher may serve many flows and runners at once, on one event loop
    or several (``run()`` from several threads). Call `shutdown` when done.

    0.1.5's ``dispatch(flow_id, node_id, execute_fn)`` runs ``execute_fn`` in a
    thread (at most ``max_workers`` at once) and ``wait_all()`` blocks until
    those calls have returned, raising their errors as one `ExceptionGroup`.
    """

    name = "thread"
    concurrent = True
    #: No bound on activations per flow: the pool bounds blocking calls, and a
    #: bound here would let calls queued behind a type limit hold up other types.
    max_concurrency: int | None = None
    #: Blocking executors always go through `run_blocking`, never inline.
    offloads_blocking = True

    def __init__(
        self,
        max_workers: int | None = None,
        type_limits: Mapping[str | NodeType, int] | None = None,
        *,
        thread_name_prefix: str = "qm-thread",
    ) -> None:
        workers = default_max_workers() if max_workers is None else max_workers
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"max_workers must be an integer of at least 1, got {workers!r}")
        limits: dict[str, int] = {}
        for key, limit in (type_limits or {}).items():
            node_type = key.value if isinstance(key, NodeType) else key
            if not isinstance(node_type, str) or not node_type:
                raise ValueError(f"type_limits keys must be node type names, got {key!r}")
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValueError(
                    f"type_limits[{node_type!r}] must be an integer of at least 1, got {limit!r}"
                )
            limits[node_type] = limit
        self._pool = WorkerPool(workers, limits, thread_name_prefix)
        self._gates = self._pool.gates
        self._inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Inbox] = (
            weakref.WeakKeyDictionary()
        )
        self._inbox_lock = threading.Lock()
        self._dispatched = DispatchedCalls(workers, f"{thread_name_prefix}-dispatch")
        # A dispatcher dropped without shutdown() must not leave idle threads behind.
        weakref.finalize(self, self._pool.close, False)

    @classmethod
    def from_settings(cls, settings: ThreadDispatcherSettings) -> ThreadDispatcher:
        """The dispatcher a validated ``[dispatcher]`` section describes."""
        return cls(max_workers=settings.max_workers, type_limits=dict(settings.type_limits))

    @property
    def max_workers(self) -> int:
        """Worker threads at most (started on demand)."""
        return self._pool.max_workers

    @property
    def type_limits(self) -> dict[str, int]:
        """Node type -> most calls of that type running at once."""
        return {name: gate.limit for name, gate in self._gates.items()}

    @property
    def closed(self) -> bool:
        """True once `shutdown` was called."""
        return self._pool.closed

    async def run_blocking(self, fn: Callable[[], T], node: GraphNode | None = None) -> T:
        """Run ``fn`` in a worker thread and return its result (or raise its error).

        Cancelling the awaiting task drops the call if it has not started; a call
        that has started runs to its end in its thread. A call made by a flow that
        is stopping never starts: it waits for the stop to cancel its task. Once
        the dispatcher is shut down, calls raise `DispatcherShutdownError`.
        """
        loop = asyncio.get_running_loop()
        inbox = self._inboxes.get(loop)
        if inbox is None:
            inbox = self._inbox_for(loop)
        future: asyncio.Future[Any] = loop.create_future()
        context = context_of(fn)
        if context is not None and context.cancelled:
            return cast(T, await _until_stopped(loop, future))
        gates = self._gates
        gate = gates.get(node.type_name) if gates and node is not None else None
        work = Work(fn, future, inbox, gate, context)
        try:
            self._pool.submit(work)
        except DispatcherShutdownError:
            if context is None or not self._pool.dropping:
                raise
            # shutdown(wait=False) stops the flows it serves, this one included.
            work.stop_flow()
            return cast(T, await _until_stopped(loop, future))
        return cast(T, await future)

    def _inbox_for(self, loop: asyncio.AbstractEventLoop) -> Inbox:
        with self._inbox_lock:
            inbox = self._inboxes.get(loop)
            if inbox is None:
                inbox = self._inboxes[loop] = Inbox(loop)
            return inbox

    def dispatch(
        self, flow_id: UUID, node_id: UUID, execute_fn: Callable[[UUID, UUID], None]
    ) -> None:
        """0.1.5's protocol: start ``execute_fn(flow_id, node_id)`` in a worker thread."""
        if self.closed:
            raise DispatcherShutdownError("the thread dispatcher is shut down")
        self._dispatched.dispatch(flow_id, node_id, execute_fn)

    def wait_all(self) -> None:
        """0.1.5's protocol: block until every dispatched call has returned."""
        self._dispatched.wait_all()

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting calls and release the threads. Safe to call again.

        ``wait=True``: every call already made, running or queued, runs to its
        end, then the threads exit; returns when they have. A flow still running
        fails at its next blocking call with `DispatcherShutdownError`.

        ``wait=False``: returns at once. Every flow with a call in this
        dispatcher, running or queued, is stopped (as by ``runner.stop``): its
        running calls see ``context.cancelled`` and finish in their threads,
        its queued calls never start, and it ends as stopped. A flow that makes
        a call later is stopped the same way. Queued calls made outside a flow
        raise `DispatcherShutdownError`.
        """
        self._dispatched.shutdown(wait)
        pool = self._pool
        dropped = pool.close(abandon=not wait)
        if wait:
            pool.join()
            return
        for work in pool.running.copy():
            work.stop_flow()
        for work in dropped:
            work.drop()
            work.inbox.post(work)

    def __repr__(self) -> str:
        limits = f", type_limits={self.type_limits!r}" if self._gates else ""
        state = ", closed" if self.closed else ""
        return f"ThreadDispatcher(max_workers={self.max_workers}{limits}{state})"


async def _until_stopped(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> Any:
    """A call of a stopping flow starts nothing: it waits for the flow's stop, already
    on its way to this loop, to cancel the awaiting task. The timer is a safety net."""
    timer = loop.call_later(_STOP_GRACE, future.cancel)
    try:
        return await future
    finally:
        timer.cancel()
