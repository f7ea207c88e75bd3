"""`AsyncDispatcher`: activations as concurrent asyncio tasks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar
from uuid import UUID

from quartermaster_engine.dispatchers.daemon_threads import run_in_daemon_thread
from quartermaster_engine.dispatchers.dispatched import DispatchedCalls
from quartermaster_engine.types import GraphNode

T = TypeVar("T")


class AsyncDispatcher:
    """Runs ready activations concurrently as asyncio tasks.

    At most ``max_concurrency`` activations of a flow run at once (None: no
    bound). Blocking ``def`` executors run in daemon worker threads (see
    `daemon_threads`), so they never block other branches, and a call abandoned
    by a timeout never keeps the process from exiting.

    0.1.5's ``dispatch(flow_id, node_id, execute_fn)`` runs ``execute_fn`` in a
    worker thread and ``wait_all()`` blocks until those calls have returned.
    """

    name = "async"
    concurrent = True

    def __init__(self, max_concurrency: int | None = None) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.max_concurrency = max_concurrency
        self._dispatched = DispatchedCalls(max_concurrency, "qm-async-dispatch")

    async def run_blocking(self, fn: Callable[[], T], node: GraphNode) -> T:
        return await run_in_daemon_thread(fn)

    def dispatch(
        self, flow_id: UUID, node_id: UUID, execute_fn: Callable[[UUID, UUID], None]
    ) -> None:
        """0.1.5's protocol: start ``execute_fn(flow_id, node_id)`` in a worker thread."""
        self._dispatched.dispatch(flow_id, node_id, execute_fn)

    def wait_all(self) -> None:
        """0.1.5's protocol: block until every dispatched call has returned; their
        errors are raised together as one `ExceptionGroup`."""
        self._dispatched.wait_all()

    def shutdown(self, wait: bool = True) -> None:
        """Release the threads of dispatched calls (flows' tasks end with their flows)."""
        self._dispatched.shutdown(wait)
