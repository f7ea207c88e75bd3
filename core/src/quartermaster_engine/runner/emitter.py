"""Event emission for one flow: numbering, live delivery, and the durable log.

Every event gets the flow's next sequence number and a timestamp, then goes to
each listener (``on_event``, sinks, ``run_async`` queues) on the flow's loop
thread. When the store keeps an event log, every event except tokens is also
held in `unlogged` until the next commit writes it, in the same transaction as
the outcome that produced it. Events that report an outcome (a node finished,
a flow paused) are *staged*: numbered and logged by the commit, then delivered
live only once that commit succeeded, so a listener never hears of an outcome
the store does not have. Listeners receive events in sequence order: an event
emitted while a staged one awaits its commit is held until that one is out.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from quartermaster_engine.events import FlowEvent, TokenGenerated
from quartermaster_engine.runner.listeners import Listener, Listeners
from quartermaster_engine.stores.records import Activation


class Emitter:
    """Numbers and delivers one flow's events; collects them for the event log."""

    __slots__ = (
        "_delivery",
        "_order",
        "flow_id",
        "listeners",
        "listening",
        "logging",
        "loop",
        "loop_thread",
        "muted",
        "parent_flow_id",
        "seq",
        "unlogged",
    )

    def __init__(
        self,
        flow_id: UUID,
        parent_flow_id: UUID | None,
        listeners: Iterable[Listener],
        *,
        logging: bool,
        listener_budget: float | None,
    ) -> None:
        self.flow_id = flow_id
        self.parent_flow_id = parent_flow_id
        self.listeners = list(listeners)
        self._delivery = Listeners(self.listeners, flow_id, listener_budget)
        #: Whether anything wants events: when False and nothing is logged, the
        #: runner does not even build them.
        self.logging = logging
        self.listening = bool(self.listeners) or logging
        self.seq = 0
        self.unlogged: list[FlowEvent] = []
        #: Set once the flow is stopping: tokens are dropped from then on.
        self.muted = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread = 0
        # Events numbered but not yet delivered, in order: [event, released]; made by
        # the first `stage` (an empty deque is 760 bytes, kept per flow in flight).
        self._order: deque[list[Any]] | None = None

    @property
    def holding(self) -> bool:
        """Whether events wait behind a staged one (deliveries must keep order)."""
        return bool(self._order)

    def number(self, event: FlowEvent) -> None:
        """Give ``event`` the flow's next number and hold it for the log, without
        delivering it (the caller delivers it once its commit is written)."""
        self.seq += 1
        event.seq = self.seq
        event.ts = time.time()
        event.parent_flow_id = self.parent_flow_id
        if self.logging:
            self.unlogged.append(event)

    def emit(self, event: FlowEvent) -> None:
        """Number ``event``, hold it for the log, and hand it to every listener."""
        self.number(event)
        order = self._order
        if order:
            order.append([event, True])  # after a staged event still committing
        else:
            self.deliver(event)

    def stage(self, event: FlowEvent) -> list[Any]:
        """Number ``event`` and hold it for the next commit; `release` the returned
        handle once the commit succeeded (or `drop` it if it failed)."""
        self.number(event)
        handle = [event, False]
        order = self._order
        if order is None:
            order = self._order = deque()
        order.append(handle)
        return handle

    def release(self, handle: list[Any]) -> None:
        """The staged event's commit succeeded: deliver it and whatever waited on it."""
        handle[1] = True
        order = self._order
        while order and order[0][1]:
            event = order.popleft()[0]
            if event is not None:
                self.deliver(event)

    def drop(self, handle: list[Any]) -> None:
        """The staged event's commit failed: it is never delivered."""
        handle[0] = None
        self.release(handle)

    def flush(self) -> None:
        """The run is over: deliver every held event whose commit went through."""
        order = self._order
        while order:
            event, released = order.popleft()
            if event is not None and released:
                self.deliver(event)

    def take_unlogged(self) -> list[FlowEvent]:
        """The events the next commit writes (and forgets them here)."""
        events = self.unlogged
        if events:
            self.unlogged = []
        return events

    def deliver(self, event: FlowEvent) -> None:
        """Hand an already numbered event to every listener (see `Listeners`: a
        failing listener is logged once, one over its time budget is muted)."""
        if self.listeners:
            self._delivery.deliver(event)

    def emit_threadsafe(self, event: FlowEvent) -> None:
        """`emit` from any thread: events from worker threads are handed to the loop's
        thread, in the order they were emitted."""
        if threading.get_ident() == self.loop_thread or self.loop is None:
            self.emit(event)
        else:
            self.loop.call_soon_threadsafe(self.emit, event)

    def token(self, act: Activation, token: str) -> None:
        """Stream a token of ``act``; safe from worker threads. Tokens are live only:
        they carry the number of the event before them and are never logged. Once a
        stop is requested they are dropped."""
        if not self.listeners or self.muted:
            return
        event = TokenGenerated(flow_id=self.flow_id, node_id=act.node_id, token=token)
        if threading.get_ident() == self.loop_thread or self.loop is None:
            self._token(event)
        else:
            self.loop.call_soon_threadsafe(self._token, event)

    def _token(self, event: TokenGenerated) -> None:
        # Queued from a worker thread before a stop was requested: still dropped.
        if not self.muted:
            event.seq = self.seq  # tokens take no number of their own: the log has no gaps
            event.ts = time.time()
            event.parent_flow_id = self.parent_flow_id
            if self._order:
                self._order.append([event, True])  # behind a staged event, in order
            else:
                self.deliver(event)
