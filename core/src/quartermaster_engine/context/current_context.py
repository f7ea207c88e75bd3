"""`current_context()`: the `ExecutionContext` of the node running in this task or
thread, so that code an executor calls (a tool, a helper library) can report progress
(``current_context().emit_progress(...)``) without the context being passed down.

The runner binds it around every executor call: on the flow's loop for ``async``
executors, in the worker thread for blocking ones. Outside a node it is None.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quartermaster_engine.context.execution_context import ExecutionContext

#: The variable itself: the runner's executor call sets and resets it directly
#: (no context-manager objects per activation); everyone else uses `bind`.
CURRENT: ContextVar[ExecutionContext | None] = ContextVar(
    "quartermaster_current_context", default=None
)


def current_context() -> ExecutionContext | None:
    """The context of the node whose executor is running here, or None."""
    return CURRENT.get()


@contextmanager
def bind(context: ExecutionContext) -> Iterator[ExecutionContext]:
    """Make ``context`` the `current_context` inside the ``with`` block (restored after)."""
    token = CURRENT.set(context)
    try:
        yield context
    finally:
        CURRENT.reset(token)
