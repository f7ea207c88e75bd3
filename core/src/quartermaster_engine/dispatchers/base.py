"""The dispatcher contract: where and when activations run.

The scheduler keeps one queue of ready activations per flow. A dispatcher
decides how they run:

- ``concurrent``: False runs them one at a time, inline, in queue order
  (deterministic); True runs them as concurrent asyncio tasks, at most
  ``max_concurrency`` at once (None: no bound).
- ``run_blocking(fn, node)``: how a plain ``def`` executor runs. ``async def``
  executors always run on the event loop. For engine calls ``fn`` is a
  `BlockingCall` whose ``context`` names the flow (``context.cancelled``,
  ``context.stop_flow()``).

The scheduler's own state (joins, memory, commits) only ever changes on the
event loop's thread, whatever the dispatcher, so it needs no locks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar, runtime_checkable

from quartermaster_engine.types import GraphNode

T = TypeVar("T")


@runtime_checkable
class TaskDispatcher(Protocol):
    """How activations are scheduled and where blocking executors run."""

    concurrent: bool
    max_concurrency: int | None

    async def run_blocking(self, fn: Callable[[], T], node: GraphNode) -> T:
        """Run a blocking executor call and return its result."""
        ...

    def shutdown(self, wait: bool = True) -> None:
        """Release the dispatcher's resources (threads, pools)."""
        ...
