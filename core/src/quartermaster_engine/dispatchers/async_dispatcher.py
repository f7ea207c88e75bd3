"""`AsyncDispatcher`: activations as concurrent asyncio tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from quartermaster_engine.types import GraphNode

T = TypeVar("T")


class AsyncDispatcher:
    """Runs ready activations concurrently as asyncio tasks.

    At most ``max_concurrency`` activations of a flow run at once (None: no
    bound). Blocking ``def`` executors run in the event loop's default thread
    pool, so they never block other branches.
    """

    name = "async"
    concurrent = True

    def __init__(self, max_concurrency: int | None = None) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.max_concurrency = max_concurrency

    async def run_blocking(self, fn: Callable[[], T], node: GraphNode) -> T:
        return await asyncio.to_thread(fn)

    def shutdown(self, wait: bool = True) -> None:
        """Nothing to release: tasks end with their flows."""
