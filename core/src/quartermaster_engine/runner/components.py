"""Checks and clean-up of the parts an engine is given or builds."""

from __future__ import annotations

import inspect
from typing import Any

STORE_METHODS = (
    "save_node_execution",
    "get_node_execution",
    "get_all_node_executions",
    "save_memory",
    "get_memory",
    "get_all_memory",
    "delete_memory",
    "save_messages",
    "get_messages",
    "append_message",
    "clear_flow",
)


def check_component(role: str, value: Any, needed: tuple[str, ...]) -> None:
    """Fail at construction, not mid-flow, when an argument is not what its role needs."""
    if value is None:
        return
    missing = [name for name in needed if not hasattr(value, name)]
    if missing:
        raise TypeError(
            f"{role} {type(value).__name__} is not a {role}: it lacks {', '.join(missing)}"
        )


async def release(item: Any) -> None:
    """Call ``item.close()`` or else ``item.shutdown()``, awaiting what it returns."""
    for method in ("close", "shutdown"):
        fn = getattr(item, method, None)
        if callable(fn):
            result = fn()
            if inspect.isawaitable(result):
                await result
            return
