"""The durable events of a followed flow's child flows on a fleet, merged into
the stream a client follows (`event_log.read_log` given a `ChildLogs`).

Locally a child flow runs inside its parent's activation and its events reach
the parent's listeners as they happen. On a fleet the child's events are in
the child's own log, written by the workers. A client following the parent
learns of a child from the parent's `ChildFlowWaited` event and reads the
child's log from then on, with its own children's (grandchildren's) in turn.

Order: before each event of the followed flow, every followed child's log is
read up to now, so what a child logged before its end (and so before the wake
of its parent's node) comes before the node's run after the wake. While the
followed flow's log is quiet, the children's logs are read at each look at it
(every ``poll`` seconds), after the tokens received (a worker publishes a
node's tokens before it commits the node). A child is dropped once it has
paused or ended and its log is read to that point; a later `ChildFlowWaited`
for it (its parent's node parked again after an answer) follows it on from
the event after the last one relayed.
Tokens are not read here: a worker publishes a child's tokens on the live
channels of its ancestors (`live_tokens.TokenPublisher`).
"""

from __future__ import annotations

from uuid import UUID

from quartermaster_engine.events import ChildFlowWaited, FlowEvent
from quartermaster_engine.stores.adapter import StoreAdapter
from quartermaster_engine.stores.records import FlowStatus


class ChildLogs:
    """The logs of the child flows (and theirs) the followed flows wait for."""

    def __init__(self, store: StoreAdapter) -> None:
        self.store = store
        self._seen: dict[UUID, int] = {}
        #: A followed flow's children followed now.
        self._waits: dict[UUID, list[UUID]] = {}

    @property
    def active(self) -> bool:
        return any(self._waits.values())

    def note(self, event: FlowEvent) -> None:
        """Follow the child a `ChildFlowWaited` names (from where it was left)."""
        if isinstance(event, ChildFlowWaited):
            waits = self._waits.setdefault(event.flow_id, [])
            if event.child_flow_id not in waits:
                waits.append(event.child_flow_id)
                self._seen.setdefault(event.child_flow_id, 0)

    async def catch_up(self, flow_id: UUID) -> list[FlowEvent]:
        """The events ``flow_id``'s followed children logged since the last read,
        child by child; before each event of a child, its own children's."""
        out: list[FlowEvent] = []
        for child in list(self._waits.get(flow_id, ())):
            settled = await self._settled(child)  # (read first: nothing is logged after)
            while events := await self.store.read_events(child, self._seen[child], 500):
                for event in events:
                    out += await self.catch_up(child)
                    self._seen[child] = event.seq
                    out.append(event)
                    self.note(event)
            out += await self.catch_up(child)
            if settled:
                self._waits[flow_id].remove(child)
        return out

    async def _settled(self, child: UUID) -> bool:
        record = await self.store.get_flow(child)
        return record is None or record.status is not FlowStatus.RUNNING
