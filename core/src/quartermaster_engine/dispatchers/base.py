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

0.1.5 documented another protocol, `DispatchProtocol` (``dispatch(flow_id,
node_id, execute_fn)``, ``wait_all()``, ``shutdown()``). The engine's own
dispatchers implement it too, and a dispatcher that implements only that one
is accepted by `FlowRunner` through `LegacyDispatcher` (see `as_dispatcher`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable
from uuid import UUID

from quartermaster_engine.context.current_context import CURRENT
from quartermaster_engine.types import GraphNode

if TYPE_CHECKING:
    from quartermaster_engine.context.execution_context import ExecutionContext
    from quartermaster_engine.nodes import NodeExecutor

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


@runtime_checkable
class OffloadsBlocking(Protocol):
    """An optional ability: ``offloads_blocking`` says whether `run_blocking` runs
    blocking executors off the event loop (a thread pool). A dispatcher without it
    offloads them when it is ``concurrent``; a non-concurrent one calls them inline
    (deterministic order), unless the node has a timeout."""

    offloads_blocking: bool


def offloads_blocking(dispatcher: TaskDispatcher) -> bool:
    """Whether ``dispatcher`` runs blocking executors off the loop (see `OffloadsBlocking`)."""
    if isinstance(dispatcher, OffloadsBlocking):
        return bool(dispatcher.offloads_blocking)
    return bool(dispatcher.concurrent)


@runtime_checkable
class DispatchProtocol(Protocol):
    """quartermaster-engine 0.1.5's dispatcher protocol."""

    def dispatch(
        self, flow_id: UUID, node_id: UUID, execute_fn: Callable[[UUID, UUID], None]
    ) -> None:
        """Run ``execute_fn(flow_id, node_id)``, now or later, here or elsewhere."""
        ...

    def wait_all(self) -> None:
        """Block until every dispatched call has returned; raise their errors."""
        ...

    def shutdown(self) -> None:
        """Release the dispatcher's resources."""
        ...


class BlockingCall:
    """The call a dispatcher's ``run_blocking`` receives for a blocking executor:
    calling it runs ``executor.execute(context)``; ``context`` tells the dispatcher
    which flow the call belongs to (``context.cancelled``, ``context.stop_flow``)."""

    __slots__ = ("context", "executor")

    def __init__(self, executor: NodeExecutor, context: ExecutionContext) -> None:
        self.executor = executor
        self.context = context

    def __call__(self) -> Any:
        # Bound here, in whatever thread runs the call, so current_context() works
        # in the executor and the tools it calls.
        context = self.context
        token = CURRENT.set(context)  # (not `bind`: its generator costs ~1 µs per node)
        try:
            return self.executor.execute(context)
        finally:
            CURRENT.reset(token)
