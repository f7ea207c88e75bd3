"""`Flows`: the flows a durable store keeps, listed, shown and deleted by id."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from quartermaster_engine.runner.arguments import flow_id_arg
from quartermaster_engine.runner.errors import FlowStateError
from quartermaster_engine.stores.adapter import StoreAdapter
from quartermaster_engine.stores.base import FlowNotFoundError
from quartermaster_engine.stores.records import FlowRecord, FlowSnapshot, FlowStatus


class Flows:
    """An engine's flows in its store (``engine.flows``). Needs a durable store."""

    def __init__(self, store: StoreAdapter, store_name: Callable[[], str]) -> None:
        self._store = store
        self._store_name = store_name

    def _durable(self, what: str) -> None:
        if not self._store.durable:
            raise FlowStateError(
                f"{what} needs a durable store; {self._store_name()} keeps no flow records"
            )

    async def list(
        self, *, status: FlowStatus | None = None, limit: int | None = None
    ) -> list[FlowRecord]:
        """Flow records, most recently updated first (``status``: only those)."""
        self._durable("listing flows")
        records: list[FlowRecord] = await self._store.list_flows(status=status, limit=limit)
        return records

    async def get(self, flow_id: UUID | str) -> FlowRecord:
        """The flow's record; `FlowNotFoundError` if the store has none."""
        self._durable("reading a flow")
        fid = flow_id_arg(flow_id)
        record: FlowRecord | None = await self._store.get_flow(fid)
        if record is None:
            raise FlowNotFoundError(f"no flow {fid} in the store ({self._store_name()})")
        return record

    async def show(self, flow_id: UUID | str) -> FlowSnapshot:
        """Everything the store holds of the flow (record, node records, queue, joins)."""
        self._durable("reading a flow")
        fid = flow_id_arg(flow_id)
        snapshot: FlowSnapshot | None = await self._store.load_flow(fid)
        if snapshot is None:
            raise FlowNotFoundError(f"no flow {fid} in the store ({self._store_name()})")
        return snapshot

    async def delete(self, flow_id: UUID | str) -> None:
        """Delete the flow and everything stored of it; `FlowNotFoundError` if none."""
        self._durable("deleting a flow")
        fid = flow_id_arg(flow_id)
        if not await self._store.delete_flow(fid):
            raise FlowNotFoundError(f"no flow {fid} in the store ({self._store_name()})")
