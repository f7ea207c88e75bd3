"""Reading a flow's history from a durable store (see `checkpoints`)."""

from __future__ import annotations

from uuid import UUID

from quartermaster_engine.events import FlowEdited, FlowEvent, FlowMigrated
from quartermaster_engine.history.checkpoints import Checkpoint, checkpoints
from quartermaster_engine.history.reuse import reused_keys
from quartermaster_engine.runner.errors import FlowStateError
from quartermaster_engine.stores.adapter import StoreAdapter
from quartermaster_engine.stores.base import FlowNotFoundError
from quartermaster_engine.stores.records import FlowSnapshot


async def read_history(store: StoreAdapter, flow_id: UUID, store_name: str) -> list[Checkpoint]:
    """The flow's checkpoints, one per commit, oldest first.

    Two reads: the flow with all its records, and its event log (for the edits).
    Raises `FlowNotFoundError` naming the flow and the store, `FlowStateError` when
    the store keeps no flow records (a 0.1.5-contract store)."""
    if not store.durable:
        raise FlowStateError(f"history needs a durable store; {store_name} keeps no flow records")
    snapshot: FlowSnapshot | None = await store.load_flow(flow_id)
    if snapshot is None:
        raise FlowNotFoundError(f"no flow {flow_id} in the store ({store_name})")
    events: list[FlowEvent] = await store.read_events(flow_id)
    edits = [e for e in events if isinstance(e, FlowEdited)]
    dropped = {
        UUID(node): name
        for e in events
        if isinstance(e, FlowMigrated)
        for node, name in e.dropped.items()
    }
    return checkpoints(snapshot, edits, reused_keys(events), dropped)


__all__ = ["read_history"]
