"""Dispatchers written for 0.1.5's protocol (``dispatch``, ``wait_all``, ``shutdown``).

`FlowRunner` accepts them through `as_dispatcher`: a `LegacyDispatcher` wraps one
so the scheduler keeps its single contract, `TaskDispatcher`. Activations run one
at a time in queue order, as with `SyncDispatcher` (so a flow's result is the
same), and every blocking executor call goes through the wrapped dispatcher's
``dispatch``: ``execute_fn(flow_id, node_id)`` runs the node's executor, and the
scheduler goes on when it has returned, wherever the dispatcher ran it (inline
or in a thread of its own). ``wait_all()`` is called after each call, so an error
the dispatcher raises fails that node. ``async def`` executors stay on the
event loop, as with every dispatcher.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast
from uuid import UUID

from quartermaster_engine.dispatchers.base import BlockingCall, DispatchProtocol, TaskDispatcher
from quartermaster_engine.types import GraphNode

T = TypeVar("T")


class LegacyDispatcher:
    """A `TaskDispatcher` running blocking node work through a 0.1.5-style dispatcher."""

    concurrent = False
    max_concurrency: int | None = 1
    #: Every blocking call goes through ``dispatch``, never inline.
    offloads_blocking = True

    def __init__(self, inner: DispatchProtocol) -> None:
        self.inner = inner
        self.name = f"0.1.5-protocol {type(inner).__name__}"

    async def run_blocking(self, fn: Callable[[], T], node: GraphNode) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        loop_thread = threading.get_ident()

        def settle(outcome: BaseException | None, value: Any) -> None:
            if future.done():  # the await timed out or was cancelled meanwhile
                return
            if outcome is not None:
                future.set_exception(outcome)
            else:
                future.set_result(value)

        def execute_fn(flow_id: UUID, node_id: UUID) -> None:
            outcome: BaseException | None = None
            value: Any = None
            try:
                value = fn()
            except BaseException as exc:
                outcome = exc
            if threading.get_ident() == loop_thread:
                settle(outcome, value)
            else:
                loop.call_soon_threadsafe(settle, outcome, value)

        flow_id = fn.context.flow_id if isinstance(fn, BlockingCall) else UUID(int=0)
        self.inner.dispatch(flow_id, node.id, execute_fn)
        value = await future
        self.inner.wait_all()
        return cast(T, value)

    def shutdown(self, wait: bool = True) -> None:
        """Shut the wrapped dispatcher down (0.1.5's ``shutdown()`` takes no argument)."""
        self.inner.shutdown()

    def __repr__(self) -> str:
        return f"LegacyDispatcher({self.inner!r})"


def as_dispatcher(value: Any) -> TaskDispatcher:
    """``value`` if it is a `TaskDispatcher`; a `LegacyDispatcher` around it if it
    implements 0.1.5's `DispatchProtocol`; else a `TypeError` naming what is missing."""
    if isinstance(value, TaskDispatcher):
        return value
    if isinstance(value, DispatchProtocol):
        return LegacyDispatcher(value)
    ours = [n for n in ("concurrent", "max_concurrency", "run_blocking") if not hasattr(value, n)]
    old = [n for n in ("dispatch", "wait_all", "shutdown") if not hasattr(value, n)]
    raise TypeError(
        f"dispatcher {type(value).__name__} is not a dispatcher: it lacks "
        f"{', '.join(ours)} (TaskDispatcher) and {', '.join(old)} (0.1.5's protocol: "
        "dispatch, wait_all, shutdown)"
    )
