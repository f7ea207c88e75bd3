"""`SyncDispatcher`: one activation at a time, inline, in queue order."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from quartermaster_engine.types import GraphNode

T = TypeVar("T")


class SyncDispatcher:
    """Runs activations one after another on the event loop, in a deterministic order.

    Ready activations run first-in first-out (breadth-first over the graph).
    A blocking ``def`` executor runs inline, on the loop's thread, unless the
    node has a ``timeout``, in which case it runs in a worker thread so the
    timeout can fire.
    """

    name = "sync"
    concurrent = False
    max_concurrency: int | None = 1

    async def run_blocking(self, fn: Callable[[], T], node: GraphNode) -> T:
        return fn()

    def shutdown(self, wait: bool = True) -> None:
        """Nothing to release."""
