"""The in-process event log: replay after a number, live events once each, retention."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

from qm_server.event_source import InProcessEventLog, follow
from quartermaster_engine.events import (
    FlowEvent,
    FlowFinished,
    FlowPaused,
    FlowStarted,
    TokenGenerated,
)


def _numbered(event: FlowEvent, seq: int) -> FlowEvent:
    event.seq = seq
    return event


def test_events_after_a_number_are_the_ones_that_follow_it() -> None:
    log = InProcessEventLog()
    flow = uuid4()
    events = [_numbered(TokenGenerated(flow_id=flow, token=str(i)), i) for i in range(1, 6)]
    for event in events:
        log.record(event)
    assert log.events_after(flow, 0) == events
    assert log.events_after(flow, 3) == events[3:]
    assert log.events_after(flow, 5) == []
    assert log.events_after(uuid4(), 0) == []


def test_follow_replays_then_goes_live_without_repeating_what_it_sent() -> None:
    async def scenario() -> list[int]:
        log = InProcessEventLog()
        flow = uuid4()
        for seq in (1, 2, 3):
            log.record(_numbered(TokenGenerated(flow_id=flow, token="t"), seq))
        seen: list[int] = []

        async def read() -> None:
            async for event in follow(log, flow, 1, heartbeat=5):
                assert event is not None
                seen.append(event.seq)

        reader = asyncio.ensure_future(read())
        await asyncio.sleep(0.01)
        log.record(_numbered(TokenGenerated(flow_id=flow, token="t"), 4))
        log.record(_numbered(FlowFinished(flow_id=flow), 5))
        await asyncio.wait_for(reader, 5)
        return seen

    assert asyncio.run(scenario()) == [2, 3, 4, 5]


def test_old_ended_flows_are_dropped_and_paused_ones_kept() -> None:
    log = InProcessEventLog(keep_flows=2)
    paused, ended, newer, newest = (UUID(int=i) for i in range(1, 5))
    log.record(_numbered(FlowStarted(flow_id=paused), 1))
    log.record(_numbered(FlowPaused(flow_id=paused), 2))
    log.record(_numbered(FlowFinished(flow_id=ended), 1))
    log.record(_numbered(FlowFinished(flow_id=newer), 1))
    log.record(_numbered(FlowStarted(flow_id=newest), 1))
    assert [len(log.events_after(f, 0)) for f in (paused, ended, newer, newest)] == [2, 0, 0, 1]
