"""Which stores several processes can share: the rule remote dispatchers (clients)
and their workers both apply, so both refuse an in-memory store with one message."""

from __future__ import annotations

from typing import Any

from quartermaster_engine.dispatchers.remote import is_remote
from quartermaster_engine.runner.errors import StoreNotSharedError
from quartermaster_engine.stores.adapter import StoreAdapter
from quartermaster_engine.stores.base import DescribesItself
from quartermaster_engine.stores.memory_store import InMemoryStore


def store_name(store: Any) -> str:
    """The store as messages name it (its ``describe()`` when it has one:
    `DescribesItself`)."""
    return store.describe() if isinstance(store, DescribesItself) else type(store).__name__


def is_shared(store: Any) -> bool:
    """Whether other processes see what ``store`` holds: a durable store not in memory."""
    return StoreAdapter(store).durable and not isinstance(store, InMemoryStore)


def require_shared_store(store: Any, who: str) -> None:
    """Raise `StoreNotSharedError` unless ``store`` is shared; ``who`` is the first
    clause of the message ("dispatcher X runs flows on workers in other processes")."""
    if not is_shared(store):
        raise StoreNotSharedError(
            f"{who}: it needs a durable store they share (sqlite, redis, postgres); "
            f"{store_name(store)} keeps flows in this process only"
        )


def check_dispatcher_store(dispatcher: Any, store: Any) -> None:
    """Raise `StoreNotSharedError` when ``dispatcher`` runs flows on remote workers and
    ``store`` is not shared with them (what every `Engine` checks)."""
    if is_remote(dispatcher):
        name = type(dispatcher).__name__
        require_shared_store(store, f"dispatcher {name} runs flows on workers in other processes")
