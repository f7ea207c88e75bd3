"""Reading a flow's durable event log, from any process, and following it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import UUID

from quartermaster_engine.events import FlowEvent
from quartermaster_engine.stores.adapter import StoreAdapter
from quartermaster_engine.stores.base import FlowNotFoundError
from quartermaster_engine.stores.records import FlowRecord, FlowStatus

#: How often a follower asks the store for new events (seconds).
DEFAULT_POLL_SECONDS = 0.2


async def read_log(
    store: StoreAdapter,
    flow_id: UUID,
    *,
    after: int = 0,
    follow: bool = False,
    poll: float = DEFAULT_POLL_SECONDS,
    batch: int = 500,
    until_paused: bool = False,
) -> AsyncIterator[FlowEvent]:
    """The flow's logged events numbered above ``after``, in order. With ``follow``,
    keep reading as the flow goes on (asking the store every ``poll`` seconds)
    until it has ended (completed, failed, stopped) and every event is read; a
    paused flow is followed until someone resumes it and it ends, or, with
    ``until_paused``, until it pauses."""
    if not store.durable:
        raise FlowNotFoundError("the store keeps no event log (it is not a durable store)")
    record: FlowRecord | None = await store.get_flow(flow_id)
    if record is None:
        raise FlowNotFoundError(f"no flow {flow_id} in the store")
    seen = after
    while True:
        events: list[FlowEvent] = await store.read_events(flow_id, seen, batch)
        for event in events:
            seen = event.seq
            yield event
        if len(events) == batch:
            continue
        if not follow:
            return
        record = await store.get_flow(flow_id)
        if record is None:
            return  # deleted while followed
        settled = record.status.is_terminal or (until_paused and record.status is FlowStatus.PAUSED)
        if settled and seen >= record.event_seq:
            return
        await asyncio.sleep(poll)
