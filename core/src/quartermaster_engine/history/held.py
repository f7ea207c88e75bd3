"""Reading a stored flow while holding its lease, for the operations that change it
(edit, retry): a resume or recover racing them in another process gets
`FlowBusyError`, or finds the flow as they left it, never half of each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from uuid import UUID

from quartermaster_engine.events import FlowEdited, FlowEvent, UserInputRequired
from quartermaster_engine.runner.errors import FlowStateError
from quartermaster_engine.runner.lease import LeaseKeeper
from quartermaster_engine.stores.base import FlowNotFoundError
from quartermaster_engine.stores.records import FlowSnapshot

if TYPE_CHECKING:
    from quartermaster_engine.runner.engine import Engine


class Held:
    """A flow read under its lease: the snapshot, its edits and questions, the epoch."""

    def __init__(self, snapshot: FlowSnapshot, events: list[FlowEvent], epoch: int) -> None:
        self.snapshot = snapshot
        self.epoch = epoch
        self.edits = [e for e in events if isinstance(e, FlowEdited)]
        self.asked = [e for e in events if isinstance(e, UserInputRequired)]


async def read_flow(
    engine: Engine, flow_id: UUID, what: str
) -> tuple[FlowSnapshot, list[FlowEvent]]:
    """The flow with all its records and its event log; ``what`` names the operation
    in errors (a 0.1.5-contract store, an unknown flow)."""
    store = engine.store_adapter
    if not store.durable:
        raise FlowStateError(
            f"{what} needs a durable store; {engine.store_name()} keeps no flow records"
        )
    snapshot: FlowSnapshot | None = await store.load_flow(flow_id)
    if snapshot is None:
        raise FlowNotFoundError(f"no flow {flow_id} in the store ({engine.store_name()})")
    events: list[FlowEvent] = await store.read_events(flow_id)
    return snapshot, events


@asynccontextmanager
async def held(engine: Engine, flow_id: UUID, what: str) -> AsyncIterator[Held]:
    """Take the flow's lease (`FlowBusyError` naming the holder if another process
    drives it), read it, and let go when the block ends."""
    if not engine.store_adapter.durable:
        raise FlowStateError(
            f"{what} needs a durable store; {engine.store_name()} keeps no flow records"
        )
    if engine.running.active(flow_id) is not None:
        raise FlowStateError(f"flow {flow_id} is running in this process; {what} waits for it")
    lease: LeaseKeeper = engine.lease_for(flow_id)
    try:
        taken = await lease.acquire(about=f"{what} needs it")
    except FlowNotFoundError:
        raise FlowNotFoundError(f"no flow {flow_id} in the store ({engine.store_name()})") from None
    try:
        snapshot, events = await read_flow(engine, flow_id, what)
        yield Held(snapshot, events, taken.epoch)
    finally:
        await lease.release()


__all__ = ["Held", "held", "read_flow"]
