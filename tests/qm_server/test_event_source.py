"""The in-process event log: replay after a number, live events once each, retention."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

from qm_server.event_source import InProcessEventLog, follow, parse_position, position_text
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


def test_events_after_a_position_are_the_ones_that_follow_it() -> None:
    log = InProcessEventLog()
    flow = uuid4()
    started = _numbered(FlowStarted(flow_id=flow), 1)
    tokens = [_numbered(TokenGenerated(flow_id=flow, token=str(i)), 1) for i in range(3)]
    finished = _numbered(FlowFinished(flow_id=flow), 2)
    for event in (started, *tokens, finished):
        log.record(event)
    everything = [((1, 0), started), ((1, 1), tokens[0]), ((1, 2), tokens[1])]
    everything += [((1, 3), tokens[2]), ((2, 0), finished)]
    assert log.events_after(flow, (0, 0)) == everything
    assert log.events_after(flow, (1, 0)) == everything[1:]
    assert log.events_after(flow, (1, 2)) == everything[3:]
    assert log.events_after(flow, (2, 0)) == []
    assert log.events_after(uuid4(), (0, 0)) == []
    assert [position_text(p) for p, _ in everything] == ["1", "1.1", "1.2", "1.3", "2"]
    assert [parse_position(t) for t in ("7", "7.2", " 3 ", "x", "1.", "-1", "1.a")] == [
        (7, 0), (7, 2), (3, 0), None, None, None, None,
    ]  # fmt: skip


def test_follow_replays_then_goes_live_without_repeating_what_it_sent() -> None:
    async def scenario() -> list[str]:
        log = InProcessEventLog()
        flow = uuid4()
        log.record(_numbered(FlowStarted(flow_id=flow), 1))
        for _ in range(2):
            log.record(_numbered(TokenGenerated(flow_id=flow, token="t"), 1))
        seen: list[str] = []

        async def read() -> None:
            async for item in follow(log, flow, (1, 0), heartbeat=5):
                assert item is not None
                seen.append(position_text(item[0]))

        reader = asyncio.ensure_future(read())
        await asyncio.sleep(0.01)
        log.record(_numbered(TokenGenerated(flow_id=flow, token="t"), 1))
        log.record(_numbered(FlowFinished(flow_id=flow), 2))
        await asyncio.wait_for(reader, 5)
        return seen

    assert asyncio.run(scenario()) == ["1.1", "1.2", "1.3", "2"]


def test_old_ended_flows_are_dropped_and_paused_ones_kept() -> None:
    log = InProcessEventLog(keep_flows=2)
    paused, ended, newer, newest = (UUID(int=i) for i in range(1, 5))
    log.record(_numbered(FlowStarted(flow_id=paused), 1))
    log.record(_numbered(FlowPaused(flow_id=paused), 2))
    log.record(_numbered(FlowFinished(flow_id=ended), 1))
    log.record(_numbered(FlowFinished(flow_id=newer), 1))
    log.record(_numbered(FlowStarted(flow_id=newest), 1))
    assert [len(log.events_after(f, (0, 0))) for f in (paused, ended, newer, newest)] == [
        2,
        0,
        0,
        1,
    ]
