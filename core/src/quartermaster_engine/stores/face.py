"""`StoreFace`: the store as the engine sees it, one declared contract of typed
``async`` methods.

Stores are written with ``def`` or ``async def`` methods (`ExecutionStore`,
`DurableStore`: 0.1.5's README sketch is plain ``def``). The engine never calls a
store by method name: it wraps the store once, at the edge, in a `StoreAdapter`,
which implements this contract, and calls only these methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import timedelta
from typing import Any
from uuid import UUID

from quartermaster_engine.context.node_execution import NodeExecution
from quartermaster_engine.events import FlowEvent
from quartermaster_engine.stores.records import (
    Commit,
    FlowRecord,
    FlowSnapshot,
    FlowStatus,
    FlowUpdate,
    Lease,
)
from quartermaster_engine.types import Message


class StoreFace(ABC):
    """What the engine asks of a store (see `DurableStore` for each method's contract).

    ``durable``: the store keeps flow records (the whole `DurableStore` contract);
    the durable methods may be called only then. A store without it keeps 0.1.5's
    per-node methods (`save_node_execution`, `save_messages`, `save_memory`) only.
    """

    durable: bool

    @abstractmethod
    def describe(self) -> str:
        """The store as messages name it (passwords masked)."""

    # -- the durable contract -----------------------------------------------------

    @abstractmethod
    async def create_flow(self, record: FlowRecord) -> None: ...

    @abstractmethod
    async def get_flow(self, flow_id: UUID) -> FlowRecord | None: ...

    @abstractmethod
    async def update_flow(self, flow_id: UUID, update: FlowUpdate) -> None: ...

    @abstractmethod
    async def commit(self, flow_id: UUID, commit: Commit) -> None: ...

    @abstractmethod
    async def acquire_lease(
        self, flow_id: UUID, owner: str, ttl: float, *, take_over: int | None = None
    ) -> Lease: ...

    @abstractmethod
    async def renew_lease(self, flow_id: UUID, epoch: int, ttl: float) -> Lease: ...

    @abstractmethod
    async def release_lease(self, flow_id: UUID, epoch: int) -> None: ...

    @abstractmethod
    async def read_events(
        self, flow_id: UUID, after: int = 0, limit: int | None = None
    ) -> list[FlowEvent]: ...

    @abstractmethod
    async def load_flow(self, flow_id: UUID, *, records_after: int = 0) -> FlowSnapshot | None: ...

    @abstractmethod
    async def list_flows(
        self, *, status: FlowStatus | None = None, limit: int | None = None
    ) -> list[FlowRecord]: ...

    @abstractmethod
    async def delete_flow(self, flow_id: UUID) -> bool: ...

    @abstractmethod
    async def prune(self, older_than: timedelta) -> int: ...

    @abstractmethod
    async def record_counts(self, flow_ids: list[UUID]) -> dict[UUID, dict[str, int]] | None:
        """Each flow's node records counted per status, or None when the store cannot say
        without reading the records (the `CountsRecords` capability)."""

    # -- 0.1.5's per-node contract (stores that are not durable) ---------------------

    @abstractmethod
    async def save_node_execution(
        self, flow_id: UUID, node_id: UUID, execution: NodeExecution
    ) -> None: ...

    @abstractmethod
    async def save_messages(
        self, flow_id: UUID, node_id: UUID, messages: list[Message]
    ) -> None: ...

    @abstractmethod
    async def save_memory(self, flow_id: UUID, key: str, value: Any) -> None: ...

    @abstractmethod
    async def close(self) -> None:
        """Release the store's connections (nothing when it has no ``close``)."""
