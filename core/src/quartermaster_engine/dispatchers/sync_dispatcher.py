"""`SyncDispatcher`: one activation at a time, inline, in queue order."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar
from uuid import UUID

from quartermaster_engine.types import GraphNode

T = TypeVar("T")


class SyncDispatcher:
    """Runs activations one after another on the event loop, in a deterministic order.

    Ready activations run first-in first-out (breadth-first over the graph).
    A blocking ``def`` executor runs inline, on the loop's thread, unless the
    node has a ``timeout``, in which case it runs in a daemon worker thread so the
    timeout can fire (a call abandoned by its timeout never keeps the process
    from exiting; see `daemon_threads`).
    """

    name = "sync"
    concurrent = False
    max_concurrency: int | None = 1

    async def run_blocking(self, fn: Callable[[], T], node: GraphNode) -> T:
        return fn()

    def dispatch(
        self, flow_id: UUID, node_id: UUID, execute_fn: Callable[[UUID, UUID], None]
    ) -> None:
        """0.1.5's protocol: run ``execute_fn(flow_id, node_id)`` now, in this thread."""
        execute_fn(flow_id, node_id)

    def wait_all(self) -> None:
        """0.1.5's protocol: every dispatched call has already returned."""

    def shutdown(self, wait: bool = True) -> None:
        """Nothing to release."""
