"""`StoreAdapter`: one async face over stores written with ``def`` or ``async def``."""

from __future__ import annotations

import inspect
from typing import Any
from uuid import UUID

from quartermaster_engine.stores.records import Commit

_DURABLE_METHODS = (
    "create_flow",
    "get_flow",
    "update_flow",
    "commit",
    "load_flow",
    "list_flows",
    "delete_flow",
    "prune",
    "acquire_lease",
    "renew_lease",
    "release_lease",
    "read_events",
)


class StoreAdapter:
    """Calls a store's methods whether they are plain or coroutine functions.

    ``durable`` is True when the store implements the whole `DurableStore`
    contract; otherwise the runner falls back to 0.1.5's per-node methods.
    """

    __slots__ = ("_commit", "_commit_async", "durable", "store")

    def __init__(self, store: Any) -> None:
        self.store = store
        self.durable = all(callable(getattr(store, m, None)) for m in _DURABLE_METHODS)
        commit = getattr(store, "commit", None) if self.durable else None
        self._commit = commit
        self._commit_async = commit is not None and inspect.iscoroutinefunction(commit)

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``store.method(*args, **kwargs)``, awaiting the result if it is awaitable."""
        result = getattr(self.store, method)(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def commit(self, flow_id: UUID, commit: Commit) -> None:
        """The hot path: one call per activation, no reflection."""
        if self._commit_async:
            await self._commit(flow_id, commit)  # type: ignore[misc]
        else:
            self._commit(flow_id, commit)  # type: ignore[misc]

    @property
    def commit_is_sync(self) -> bool:
        """True when ``commit`` never suspends, so callers may skip the await."""
        return self._commit is not None and not self._commit_async

    def commit_now(self, flow_id: UUID, commit: Commit) -> None:
        """Synchronous commit; only when `commit_is_sync`."""
        self._commit(flow_id, commit)  # type: ignore[misc]
