"""Calling store methods from synchronous test code, plain or async alike."""

from __future__ import annotations

import inspect
from typing import Any

from quartermaster_engine._sync import run_sync


async def _resolve(value: Any) -> Any:
    return await value


def call(store: Any, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call a store method from synchronous test code, whether it is ``def`` or ``async def``."""
    result = getattr(store, method)(*args, **kwargs)
    if inspect.isawaitable(result):
        result = run_sync(_resolve(result))
    return result


def close_store(store: Any) -> None:
    """Close a store that has a ``close`` method (plain or async)."""
    close = getattr(store, "close", None)
    if callable(close):
        call(store, "close")
