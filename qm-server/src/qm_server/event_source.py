"""Where the server reads a flow's events: replay after a sequence number, then live.

`EventSource` is the one interface the HTTP layer uses. `InProcessEventLog` is
today's implementation: it records the events of the flows this server runs
(it is the runners' ``on_event`` listener), numbered by the engine's per-flow
``seq``. When the store keeps a durable event log, a store-backed source
replaces it here and nothing else changes.

No gap, no duplicate: a reader subscribes *before* it replays, then skips live
events whose ``seq`` it has already sent (`follow` does both).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Protocol
from uuid import UUID

from quartermaster_engine.events import FlowEvent, FlowFinished, FlowStopped

#: Events after which a flow sends nothing more (until a resume, which a stopped or
#: finished flow does not get).
TERMINAL_EVENTS = (FlowFinished, FlowStopped)


class Subscription(Protocol):
    """Live events of one flow, in ``seq`` order, from the moment of subscribing."""

    async def next(self, within: float) -> FlowEvent | None:
        """The next event, or None when ``within`` seconds pass without one."""
        ...

    def close(self) -> None:
        """Stop receiving events."""
        ...


class EventSource(Protocol):
    """A flow's events by sequence number, and a live subscription to them."""

    def events_after(self, flow_id: UUID, seq: int) -> list[FlowEvent]:
        """The flow's known events with ``seq`` greater than ``seq``, in order."""
        ...

    def subscribe(self, flow_id: UUID) -> Subscription:
        """Live events of ``flow_id`` from now on."""
        ...


class _QueueSubscription:
    def __init__(self, log: InProcessEventLog, flow_id: UUID) -> None:
        self._log = log
        self.flow_id = flow_id
        self.queue: asyncio.Queue[FlowEvent] = asyncio.Queue()

    async def next(self, within: float) -> FlowEvent | None:
        try:
            return await asyncio.wait_for(self.queue.get(), within)
        except TimeoutError:
            return None

    def close(self) -> None:
        self._log.unsubscribe(self)


class InProcessEventLog:
    """The events of the flows this process runs, kept in memory.

    ``record`` is the runners' ``on_event`` listener; the engine calls it on the
    event loop's thread, which is also where readers run, so no lock is needed.
    Logs of ended flows are dropped oldest first beyond ``keep_flows``.
    """

    def __init__(self, keep_flows: int = 1000) -> None:
        self._logs: OrderedDict[UUID, list[FlowEvent]] = OrderedDict()
        self._subscribers: dict[UUID, set[_QueueSubscription]] = {}
        self._keep = keep_flows

    def record(self, event: FlowEvent) -> None:
        """Append ``event`` to its flow's log and hand it to the flow's subscribers."""
        log = self._logs.get(event.flow_id)
        if log is None:
            log = self._logs[event.flow_id] = []
            self._trim()
        log.append(event)
        for subscription in self._subscribers.get(event.flow_id, ()):
            subscription.queue.put_nowait(event)

    def _trim(self) -> None:
        excess = len(self._logs) - self._keep
        if excess <= 0:
            return
        # Oldest ended flows go first; a flow still going (or paused) keeps its log.
        ended = [
            flow_id
            for flow_id, events in self._logs.items()
            if events and isinstance(events[-1], TERMINAL_EVENTS)
        ]
        for flow_id in ended[:excess]:
            del self._logs[flow_id]

    def forget(self, flow_id: UUID) -> None:
        """Drop a flow's log (the flow was deleted)."""
        self._logs.pop(flow_id, None)

    def events_after(self, flow_id: UUID, seq: int) -> list[FlowEvent]:
        log = self._logs.get(flow_id, [])
        # seq grows along a flow's log (resume continues the stored count): bisect.
        lo, hi = 0, len(log)
        while lo < hi:
            mid = (lo + hi) // 2
            if log[mid].seq <= seq:
                lo = mid + 1
            else:
                hi = mid
        return log[lo:]

    def subscribe(self, flow_id: UUID) -> Subscription:
        subscription = _QueueSubscription(self, flow_id)
        self._subscribers.setdefault(flow_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: _QueueSubscription) -> None:
        subscribers = self._subscribers.get(subscription.flow_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.flow_id]


async def follow(
    source: EventSource, flow_id: UUID, after: int, *, heartbeat: float = 15.0
) -> AsyncIterator[FlowEvent | None]:
    """The flow's events after ``after``, replayed then live, each exactly once.

    Yields None every ``heartbeat`` seconds without an event (so a caller can send
    a keep-alive). Ends after a terminal event.
    """
    subscription = source.subscribe(flow_id)
    try:
        last = after
        for event in source.events_after(flow_id, after):
            last = event.seq
            yield event
            if isinstance(event, TERMINAL_EVENTS):
                return
        while True:
            live = await subscription.next(heartbeat)
            if live is None:
                yield None
                continue
            if live.seq <= last:
                continue  # already replayed
            last = live.seq
            yield live
            if isinstance(live, TERMINAL_EVENTS):
                return
    finally:
        subscription.close()
