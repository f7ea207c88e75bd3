"""Checks and clean-up of the parts an engine is given or builds."""

from __future__ import annotations

import inspect
from typing import Any

from quartermaster_engine.dispatchers.base import TaskDispatcher
from quartermaster_engine.nodes import NodeRegistry
from quartermaster_engine.stores.base import Closeable

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


def check_parts(store: Any, registry: Any, listener_budget: float | None) -> None:
    """Fail at construction when an engine's argument is not what its role needs."""
    check_component("store", store, STORE_METHODS)
    if registry is not None and not isinstance(registry, NodeRegistry):
        raise TypeError(
            f"node_registry must have a get_executor(node_type) method; "
            f"got {type(registry).__name__}"
        )
    if listener_budget is not None and not listener_budget > 0:
        raise ValueError(
            f"listener_budget must be a number of seconds > 0 or None, got {listener_budget!r}"
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
    """Release what an engine built: ``close()`` (a store, a sink: `Closeable`), or a
    dispatcher's ``shutdown()`` (`TaskDispatcher`), awaiting what it returns."""
    if isinstance(item, Closeable):
        result = item.close()
        if inspect.isawaitable(result):
            await result
    elif isinstance(item, TaskDispatcher):
        item.shutdown()
