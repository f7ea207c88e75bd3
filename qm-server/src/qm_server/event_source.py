"""Where the server reads a flow's events: replay after a sequence number, then live.

`EventSource` is the one interface the HTTP layer uses. `InProcessEventLog`
records the events of the flows this server runs (it is the runners'
``on_event`` listener), tokens included.

Positions. Every event but a token has the flow's own number (``seq``, the
number it has in the store's durable log); a token carries the number of the
event before it. An event's *position* is ``(seq, 0)``, the k-th token after
event N is at ``(N, k)``; as text (the SSE ``id``) ``"N"`` and ``"N.k"``.

No gap, no duplicate: a reader subscribes *before* it replays, then skips live
events at positions it has already sent (`follow` does both).
"""

from __future__ import annotations

import asyncio
import bisect
import re
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Protocol
from uuid import UUID

from quartermaster_engine.events import FlowEvent, FlowFinished, FlowStopped, TokenGenerated

#: Events after which a flow sends nothing more (until a resume, which a stopped or
#: finished flow does not get).
TERMINAL_EVENTS = (FlowFinished, FlowStopped)


#: Where an event stands in its flow: (seq, token index after that event).
Position = tuple[int, int]
Positioned = tuple[Position, FlowEvent]


def position_text(position: Position) -> str:
    """``"N"`` for an event, ``"N.k"`` for the k-th token after event N."""
    seq, token = position
    return str(seq) if token == 0 else f"{seq}.{token}"


#: The largest event number (the stores keep 64-bit signed integers).
MAX_EVENT_NUMBER = 2**63 - 1
_POSITION = re.compile(r"([0-9]{1,19})(?:\.([0-9]{1,19}))?")


def parse_position(text: str) -> Position | None:
    """The position a ``Last-Event-ID`` names, or None if it names none (ASCII
    digits only: ``str.isdigit`` accepts ``²``, which ``int`` refuses)."""
    match = _POSITION.fullmatch(text.strip())
    if match is None:
        return None
    seq, token = int(match[1]), int(match[2] or 0)
    if seq > MAX_EVENT_NUMBER or token > MAX_EVENT_NUMBER:
        return None
    return (seq, token)


class Subscription(Protocol):
    """Live events of one flow, in order, from the moment of subscribing."""

    async def next(self, within: float) -> Positioned | None:
        """The next event and its position, or None when ``within`` seconds pass
        without one."""
        ...

    def close(self) -> None:
        """Stop receiving events."""
        ...


class EventSource(Protocol):
    """A flow's events by sequence number, and a live subscription to them."""

    def events_after(self, flow_id: UUID, position: Position) -> list[Positioned]:
        """The flow's known events after ``position``, in order."""
        ...

    def first_number(self, flow_id: UUID) -> int | None:
        """The number of the first event held for the flow (None: none held); what
        comes before it is read from the store's durable log."""
        ...

    def subscribe(self, flow_id: UUID) -> Subscription:
        """Live events of ``flow_id`` from now on."""
        ...


class _QueueSubscription:
    def __init__(self, log: InProcessEventLog, flow_id: UUID) -> None:
        self._log = log
        self.flow_id = flow_id
        self.queue: asyncio.Queue[Positioned] = asyncio.Queue()

    async def next(self, within: float) -> Positioned | None:
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
        self._logs: OrderedDict[UUID, list[Positioned]] = OrderedDict()
        self._subscribers: dict[UUID, set[_QueueSubscription]] = {}
        self._keep = keep_flows

    def record(self, event: FlowEvent) -> None:
        """Append ``event`` to its flow's log and hand it to the flow's subscribers."""
        log = self._logs.get(event.flow_id)
        if log is None:
            log = self._logs[event.flow_id] = []
            self._trim()
        position = (event.seq, 0)
        if isinstance(event, TokenGenerated):
            last = log[-1][0] if log else (event.seq, 0)
            position = (event.seq, last[1] + 1 if last[0] == event.seq else 1)
        item = (position, event)
        log.append(item)
        for subscription in self._subscribers.get(event.flow_id, ()):
            subscription.queue.put_nowait(item)

    def _trim(self) -> None:
        excess = len(self._logs) - self._keep
        if excess <= 0:
            return
        # Oldest ended flows go first; a flow still going (or paused) keeps its log.
        ended = [
            flow_id
            for flow_id, events in self._logs.items()
            if events and isinstance(events[-1][1], TERMINAL_EVENTS)
        ]
        for flow_id in ended[:excess]:
            del self._logs[flow_id]

    def forget(self, flow_id: UUID) -> None:
        """Drop a flow's log (the flow was deleted)."""
        self._logs.pop(flow_id, None)

    def events_after(self, flow_id: UUID, position: Position) -> list[Positioned]:
        log = self._logs.get(flow_id, [])
        # Positions grow along a flow's log (resume continues the stored count).
        return log[bisect.bisect_right(log, position, key=lambda item: item[0]) :]

    def first_number(self, flow_id: UUID) -> int | None:
        """The number of the first event held for the flow (None: none held)."""
        log = self._logs.get(flow_id)
        return log[0][0][0] if log else None

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
    source: EventSource, flow_id: UUID, after: Position, *, heartbeat: float = 15.0
) -> AsyncIterator[Positioned | None]:
    """The flow's events after ``after``, replayed then live, each exactly once.

    Yields None every ``heartbeat`` seconds without an event (so a caller can send
    a keep-alive). Ends after a terminal event.
    """
    subscription = source.subscribe(flow_id)
    try:
        last = after
        for item in source.events_after(flow_id, after):
            last = item[0]
            yield item
            if isinstance(item[1], TERMINAL_EVENTS):
                return
        while True:
            live = await subscription.next(heartbeat)
            if live is None:
                yield None
                continue
            if live[0] <= last:
                continue  # already replayed
            last = live[0]
            yield live
            if isinstance(live[1], TERMINAL_EVENTS):
                return
    finally:
        subscription.close()
