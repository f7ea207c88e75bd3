"""`FlowMemory`: key-value memory of one flow, read and written through its store.

Nodes write flow memory by returning ``data["memory_updates"]``; the runner
applies the updates when the node commits. `FlowMemory` is for code outside
the flow (set initial values, read results afterwards). Its methods are
synchronous and work over ``def`` and ``async def`` stores alike, from
scripts and from inside a running event loop; each has an ``a``-prefixed
async twin for async code.
"""

from __future__ import annotations

import inspect
from typing import Any
from uuid import UUID

from quartermaster_engine._sync import run_sync


async def _await(value: Any) -> Any:
    return await value


def _resolve(value: Any) -> Any:
    return run_sync(_await(value)) if inspect.isawaitable(value) else value


async def _aresolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class FlowMemory:
    """Key-value store scoped to one flow."""

    def __init__(self, flow_id: UUID, store: Any) -> None:
        self._flow_id = flow_id
        self._store = store

    def set(self, key: str, value: Any) -> None:
        """Store a value."""
        _resolve(self._store.save_memory(self._flow_id, key, value))

    def get(self, key: str, default: Any = None) -> Any:
        """A value, or ``default`` when the key is absent."""
        value = _resolve(self._store.get_memory(self._flow_id, key))
        return default if value is None else value

    def delete(self, key: str) -> None:
        """Remove a value (no error when absent)."""
        _resolve(self._store.delete_memory(self._flow_id, key))

    def get_all(self) -> dict[str, Any]:
        """Every key and value."""
        return dict(_resolve(self._store.get_all_memory(self._flow_id)))

    def list_keys(self) -> list[str]:
        """Every key."""
        return list(self.get_all())

    def clear(self) -> None:
        """Remove every value."""
        for key in self.list_keys():
            self.delete(key)

    async def aset(self, key: str, value: Any) -> None:
        await _aresolve(self._store.save_memory(self._flow_id, key, value))

    async def aget(self, key: str, default: Any = None) -> Any:
        value = await _aresolve(self._store.get_memory(self._flow_id, key))
        return default if value is None else value

    async def adelete(self, key: str) -> None:
        await _aresolve(self._store.delete_memory(self._flow_id, key))

    async def aget_all(self) -> dict[str, Any]:
        return dict(await _aresolve(self._store.get_all_memory(self._flow_id)))
