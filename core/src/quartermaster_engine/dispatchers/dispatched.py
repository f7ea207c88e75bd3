"""0.1.5's ``dispatch`` / ``wait_all`` for the engine's concurrent dispatchers.

0.1.5 documented ``dispatch(flow_id, node_id, execute_fn)`` (run
``execute_fn(flow_id, node_id)`` in parallel) and ``wait_all()`` (block until every
dispatched call has returned, raising their errors as one `ExceptionGroup`) on
every dispatcher. The engine never calls them itself (it runs activations through
``run_blocking``); they are kept for code written against 0.1.5.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from uuid import UUID


class DispatchedCalls:
    """Calls made through ``dispatch``, run in a thread pool started on first use."""

    def __init__(self, max_workers: int | None, thread_name_prefix: str) -> None:
        self._max_workers = max_workers
        self._prefix = thread_name_prefix
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[Future[None]] = []
        self._lock = threading.Lock()

    def dispatch(
        self, flow_id: UUID, node_id: UUID, execute_fn: Callable[[UUID, UUID], None]
    ) -> None:
        """Start ``execute_fn(flow_id, node_id)`` in a worker thread."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._max_workers, self._prefix)
            self._futures.append(self._pool.submit(execute_fn, flow_id, node_id))

    def wait_all(self) -> None:
        """Block until every dispatched call has returned; their errors are raised
        together as one `ExceptionGroup` (as 0.1.5 did)."""
        with self._lock:
            futures, self._futures = self._futures, []
        errors: list[Exception] = []
        for future in futures:
            try:
                future.result()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise ExceptionGroup("errors in dispatched calls", errors)

    def shutdown(self, wait: bool = True) -> None:
        """Release the pool; with ``wait``, after every dispatched call has returned."""
        with self._lock:
            pool, self._pool = self._pool, None
            if wait:
                self._futures = []
        if pool is not None:
            pool.shutdown(wait=wait)
