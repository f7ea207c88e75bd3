"""The ``/api/flows/{id}/events`` route: a flow's events as server-sent events, replayed
from the in-process log or the store's, then live."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse

from qm_server.api.bodies import (
    parse_flow_id,
)
from qm_server.errors import ApiError, error_responses
from qm_server.event_source import (
    MAX_EVENT_NUMBER,
    EventSource,
    Position,
    follow,
    next_position,
    parse_position,
)
from qm_server.service import FlowService
from qm_server.views import sse_frame
from quartermaster_engine.events import FlowEvent
from quartermaster_engine.runner.event_log import read_log
from quartermaster_engine.stores.adapter import StoreAdapter
from quartermaster_engine.stores.live import live_channel


def add_event_routes(
    router: APIRouter, service: FlowService, events: EventSource, *, heartbeat: float
) -> None:
    """Add the events route to ``router``; ``heartbeat`` is the seconds between
    keep-alive comments of an idle stream."""

    @router.get(
        "/flows/{flow_id}/events",
        tags=["flows"],
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/event-stream": {}}},
            204: {"description": "the flow ended and nothing follows the given event"},
            **error_responses(400, 404, 503),
        },
    )
    async def flow_events(
        flow_id: str,
        request: Request,
        last_event_id: Annotated[str | None, Header()] = None,
        after: Annotated[
            int | None, Query(ge=0, le=MAX_EVENT_NUMBER, description="replay after this event")
        ] = None,
    ) -> Response:
        """The flow's events as server-sent events: replayed from the start (or after
        ``Last-Event-ID`` / ``after``), then live, tokens included. Ends after the
        flow finishes or stops; ``204`` when an ended flow has nothing after that."""
        fid = parse_flow_id(flow_id)
        record = await service.record(fid)
        start: Position = (after if after is not None else 0, 0)
        if last_event_id is not None:
            named = parse_position(last_event_id)
            if named is None:
                raise ApiError(
                    400,
                    "invalid_last_event_id",
                    "Last-Event-ID must be an event id this server sent (N or N.k)",
                )
            start = named
        here = service.is_running_here(fid)
        adapter = service.adapter
        if not here and adapter.durable and events.first_number(fid) is None:
            # Run by another process, or before a restart: all we have is the store's log.
            return await _stored_stream(adapter, fid, start, record.status.is_terminal)
        ended = record.status.is_terminal and not here
        past = events.events_after(fid, start) if ended else []
        if ended and not past:
            # Nothing more will come: 204 tells an EventSource to stop reconnecting.
            return Response(status_code=204)
        # Events from before this process ran the flow (it resumed a flow paused
        # by another process, or before a restart) come from the store's log.
        first = events.first_number(fid)
        earlier: list[FlowEvent] = []
        if adapter.durable and (first is None or first > start[0] + 1):
            earlier = [
                e
                for e in await adapter.read_events(fid, start[0])
                if first is None or e.seq < first
            ]
            if earlier:
                start = (earlier[-1].seq, 0)

        async def stream() -> AsyncIterator[bytes]:
            yield b"retry: 1000\n\n"
            for old_event in earlier:
                yield sse_frame((old_event.seq, 0), old_event)
            if ended:
                for position, old in past:
                    yield sse_frame(position, old)
                return
            async for item in follow(events, fid, start, heartbeat=heartbeat):
                if item is not None:
                    yield sse_frame(*item)
                elif await request.is_disconnected():
                    return
                else:
                    yield b": keep-alive\n\n"

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )


async def _stored_stream(
    adapter: StoreAdapter, flow_id: UUID, start: Position, ended: bool
) -> Response:
    """A flow this process does not run (another server, a worker, before a
    restart): its durable log, followed until the flow ends, with the tokens its
    nodes stream from now on when the store carries them live (`LiveChannel`)."""
    if ended and not await adapter.read_events(flow_id, start[0], 1):
        return Response(status_code=204)

    async def stream() -> AsyncIterator[bytes]:
        yield b"retry: 1000\n\n"
        channel = None if ended else live_channel(adapter)
        live = None if channel is None else await channel.subscribe_live(flow_id)
        position = start
        try:
            async for event in read_log(
                adapter, flow_id, after=start[0], follow=not ended, live=live
            ):
                position = next_position(position, event)
                yield sse_frame(position, event)
        finally:
            if live is not None:
                await live.close()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
