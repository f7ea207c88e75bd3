"""Stores: where flow state lives. `InMemoryStore` ships with the core; durable
stores are separate distributions (qm-store-sqlite, qm-store-redis,
qm-store-postgres)."""

from quartermaster_engine.stores.base import (
    DurableStore,
    ExecutionStore,
    FlowExistsError,
    FlowNotFoundError,
    StoreError,
)
from quartermaster_engine.stores.memory_store import InMemoryStore
from quartermaster_engine.stores.records import (
    Activation,
    Commit,
    Delivery,
    FlowRecord,
    FlowSnapshot,
    FlowStatus,
    FlowUpdate,
)

__all__ = [
    "Activation",
    "Commit",
    "Delivery",
    "DurableStore",
    "ExecutionStore",
    "FlowExistsError",
    "FlowNotFoundError",
    "FlowRecord",
    "FlowSnapshot",
    "FlowStatus",
    "FlowUpdate",
    "InMemoryStore",
    "StoreError",
]
