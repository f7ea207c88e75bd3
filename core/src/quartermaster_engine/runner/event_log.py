"""Reading a flow's durable event log, from any process, and following it
(with the live tokens of the nodes running meanwhile, given a subscription)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import UUID

from quartermaster_engine.events import FlowEvent, TokenGenerated
from quartermaster_engine.runner.child_relay import ChildLogs
from quartermaster_engine.runner.live_tokens import decode_token
from quartermaster_engine.stores.adapter import StoreAdapter
from quartermaster_engine.stores.base import FlowNotFoundError
from quartermaster_engine.stores.live import LiveSubscription
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
    live: LiveSubscription | None = None,
    children: ChildLogs | None = None,
) -> AsyncIterator[FlowEvent]:
    """The flow's logged events numbered above ``after``, in order. With ``follow``,
    keep reading as the flow goes on (asking the store every ``poll`` seconds)
    until it has ended (completed, failed, stopped) and every event is read; a
    paused flow is followed until someone resumes it and it ends, or, with
    ``until_paused``, until it pauses.

    With ``live`` (a subscription to the flow's `LiveChannel`, made before this
    call), tokens published by the workers are yielded as they arrive, between
    the logged events. A worker's token carries the number of the last event
    logged when its node began: the events up to that one are read and yielded
    first (they happened before), then the token, numbered as the logged event
    before it in this stream. A worker publishes a node's tokens before it
    commits the node, so they come before the events of that commit. A token of
    a child flow (published there by the worker, see `live_tokens`) comes as it
    arrives, numbered as the logged event before it in this stream.

    With ``children``, the logged events of the child flows the flow waits for
    (and theirs) come too, each before the flow's next event (`child_relay`)."""
    if not store.durable:
        raise FlowNotFoundError("the store keeps no event log (it is not a durable store)")
    record: FlowRecord | None = await store.get_flow(flow_id)
    if record is None:
        raise FlowNotFoundError(f"no flow {flow_id} in the store")
    seen = after
    while True:
        if live is not None:
            while (token := await _next_token(live, 0)) is not None:
                for event in await _placed(store, flow_id, seen, token):
                    seen = seen if event is token else event.seq
                    yield event
        if children is not None and children.active:
            for event in await children.catch_up(flow_id):
                yield event
        events: list[FlowEvent] = await store.read_events(flow_id, seen, batch)
        for event in events:
            if children is not None:
                if children.active:
                    for child_event in await children.catch_up(flow_id):
                        yield child_event
                children.note(event)
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
        if live is None:
            await asyncio.sleep(poll)
            continue
        # Wait for the next read of the log on the subscription: tokens go out live.
        deadline = asyncio.get_running_loop().time() + poll
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            token = await _next_token(live, left)
            if token is not None:
                for event in await _placed(store, flow_id, seen, token):
                    seen = seen if event is token else event.seq
                    yield event


async def _next_token(live: LiveSubscription, within: float) -> TokenGenerated | None:
    """The next token within ``within`` seconds (skipping messages that are none)."""
    while (message := await live.next(within)) is not None:
        token = decode_token(message)
        if token is not None:
            return token
    return None


async def _placed(
    store: StoreAdapter, flow_id: UUID, seen: int, token: TokenGenerated
) -> list[FlowEvent]:
    """The logged events the token comes after (above ``seen``, up to the number it
    carries; none for a child flow's token), then the token, numbered as the last
    of them."""
    before: list[FlowEvent] = []
    if token.flow_id == flow_id and token.seq > seen:
        before = await store.read_events(flow_id, seen, token.seq - seen)
    token.seq = before[-1].seq if before else seen
    return [*before, token]
