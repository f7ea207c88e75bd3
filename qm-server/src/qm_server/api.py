"""The HTTP API under ``/api``: graphs, flows, their events (SSE), resume, stop, delete,
and their history: checkpoints, edits, retries and forks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from qm_server.errors import ApiError, error_responses
from qm_server.event_source import (
    MAX_EVENT_NUMBER,
    EventSource,
    Position,
    follow,
    next_position,
    parse_position,
)
from qm_server.graphs import GraphFolder, graph_from_body
from qm_server.service import FlowService
from qm_server.views import flow_summary, flow_view, graph_view, result_view, sse_frame
from quartermaster_engine.events import FlowEvent
from quartermaster_engine.history import ForkEdits
from quartermaster_engine.runner.event_log import read_log
from quartermaster_engine.stores.adapter import StoreAdapter
from quartermaster_engine.stores.live import live_channel
from quartermaster_engine.stores.records import FlowStatus


class StartFlow(BaseModel):
    """Start a flow of a graph of the graphs folder (``graph``), or of a graph posted
    inline (``graph_spec``, when the server allows it)."""

    model_config = ConfigDict(extra="forbid")

    graph: str | None = Field(default=None, description="a graph name (its file name)")
    graph_spec: dict[str, Any] | None = Field(
        default=None, description="a graph in the full or hand-written form (if enabled)"
    )
    input: str = Field(default="", description="the flow input")
    wait: bool = Field(default=False, description="answer with the result (end or pause)")

    @model_validator(mode="after")
    def _one_graph(self) -> StartFlow:
        if (self.graph is None) == (self.graph_spec is None):
            raise ValueError("give exactly one of graph and graph_spec")
        if self.graph_spec is not None and _depth(self.graph_spec) > MAX_GRAPH_DEPTH:
            raise ValueError(f"graph_spec nests deeper than {MAX_GRAPH_DEPTH} levels")
        return self


#: How deep an inline graph's JSON may nest (a graph needs a handful of levels;
#: hundreds exhaust the serializers' recursion limits).
MAX_GRAPH_DEPTH = 32
#: The largest page offset of ``GET /api/flows``.
MAX_OFFSET = 1_000_000


def _depth(value: Any) -> int:
    """How deeply ``value`` (parsed JSON) nests, counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_GRAPH_DEPTH:
                children = item.values() if isinstance(item, dict) else item
                stack.extend((child, level + 1) for child in children)
    return deepest


class ResumeFlow(BaseModel):
    """Answer a waiting node of a paused flow and continue it."""

    model_config = ConfigDict(extra="forbid")

    answer: str = Field(description="the person's answer")
    node: str | None = Field(
        default=None, description="the waiting node (id or name); default: the first waiting"
    )
    wait: bool = Field(default=False, description="answer with the result (end or pause)")


class EditMessage(BaseModel):
    """One message of an edit's ``messages``."""

    model_config = ConfigDict(extra="forbid")

    role: str = Field(description="system, user or assistant")
    content: str


class EditFlow(BaseModel):
    """Set flow-memory values of a paused, failed or stopped flow, and/or replace the
    input messages of the node that runs next (the waiting or failed one)."""

    model_config = ConfigDict(extra="forbid")

    memory: dict[str, Any] | None = Field(default=None, description="flow-memory values to set")
    messages: list[EditMessage] | None = Field(
        default=None, min_length=1, description="the input messages of the node that runs next"
    )
    node: str | None = Field(
        default=None, description="the node ``messages`` are for (id or name), when several wait"
    )

    @model_validator(mode="after")
    def _something(self) -> EditFlow:
        if self.memory is None and self.messages is None:
            raise ValueError("nothing to edit: give memory and/or messages")
        if self.memory is not None and _depth(self.memory) > MAX_GRAPH_DEPTH:
            raise ValueError(f"memory nests deeper than {MAX_GRAPH_DEPTH} levels")
        return self


class RetryFlow(BaseModel):
    """Continue a failed flow from the activation that failed it."""

    model_config = ConfigDict(extra="forbid")

    wait: bool = Field(default=False, description="answer with the result (end or pause)")


class ForkFlow(BaseModel):
    """Start a new flow from a checkpoint of this one, with edits, and run it."""

    model_config = ConfigDict(extra="forbid")

    at: int | None = Field(
        default=None, ge=0, description="the checkpoint (see the history); default: the last"
    )
    memory: dict[str, Any] | None = Field(default=None, description="flow-memory values to set")
    input: str | None = Field(default=None, description="a new flow input")
    answer: str | None = Field(default=None, description="answers the node waiting there")
    reuse: Literal["unchanged"] | None = Field(
        default=None, description="reuse the results of nodes whose inputs did not change"
    )
    wait: bool = Field(default=False, description="answer with the result (end or pause)")

    @model_validator(mode="after")
    def _shallow(self) -> ForkFlow:
        if self.memory is not None and _depth(self.memory) > MAX_GRAPH_DEPTH:
            raise ValueError(f"memory nests deeper than {MAX_GRAPH_DEPTH} levels")
        return self

    def edits(self) -> ForkEdits:
        return ForkEdits(
            at=self.at, memory=self.memory, input=self.input, answer=self.answer, reuse=self.reuse
        )


def _flow_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise ApiError(400, "invalid_flow_id", f"{text!r} is not a flow id") from None


def api_router(
    service: FlowService,
    graphs: GraphFolder,
    events: EventSource,
    *,
    allow_inline_graphs: bool,
    heartbeat: float = 15.0,
) -> APIRouter:
    """The ``/api`` routes over one service, graphs folder and event source."""
    # Every route can answer 401 (a token is required off loopback) and 500.
    router = APIRouter(prefix="/api", responses=error_responses(401, 500))

    @router.get("/health", tags=["server"])
    async def health() -> dict[str, str]:
        """Liveness; the only route that needs no token."""
        return {"status": "ok"}

    @router.get("/graphs", tags=["graphs"])
    async def list_graphs() -> dict[str, Any]:
        """The graphs of the graphs folder, by name."""
        items = []
        for name in graphs.names():
            try:
                spec = graphs.get(name)
            except ApiError as exc:
                items.append({"name": name, "error": exc.body()["error"]})
                continue
            items.append({"name": name, "title": spec.name, "nodes": len(spec.nodes)})
        return {"graphs": items}

    @router.get("/graphs/{name:path}", tags=["graphs"], responses=error_responses(400, 404))
    async def get_graph(name: str) -> dict[str, Any]:
        """One graph: its nodes and edges."""
        return graph_view(name, graphs.get(name))

    @router.post(
        "/flows",
        tags=["flows"],
        status_code=202,
        responses=error_responses(400, 403, 404, 409, 413, 503),
    )
    async def start_flow(body: StartFlow) -> JSONResponse:
        """Start a flow: ``202`` with its id (accepted: it may have paused or ended
        already; follow its events), or with ``wait`` its result (``200``)."""
        if body.graph_spec is not None:
            if not allow_inline_graphs:
                raise ApiError(
                    403,
                    "inline_graphs_disabled",
                    "posting a graph inline is off; start the server with --allow-inline-graphs",
                )
            spec = graph_from_body(body.graph_spec)
        else:
            assert body.graph is not None
            spec = graphs.get(body.graph)
        flow_id, result = await service.start(spec, body.input, wait=body.wait)
        if result is not None:
            return JSONResponse(result_view(result), status_code=200)
        return JSONResponse(
            {
                "flow_id": str(flow_id),
                "status": "running",
                "events": f"/api/flows/{flow_id}/events",
            },
            status_code=202,
        )

    @router.get("/flows", tags=["flows"], responses=error_responses(503))
    async def list_flows(
        status: Annotated[FlowStatus | None, Query(description="only flows in this status")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> dict[str, Any]:
        """Flows, most recently updated first, a page at a time."""
        records, more = await service.list(status, limit, offset)
        return {
            "flows": [flow_summary(r) for r in records],
            "offset": offset,
            "limit": limit,
            "more": more,
        }

    @router.get("/flows/{flow_id}", tags=["flows"], responses=error_responses(400, 404, 503))
    async def get_flow(flow_id: str) -> dict[str, Any]:
        """One flow: status, node runs, waiting nodes, output."""
        fid = _flow_id(flow_id)
        snapshot = await service.snapshot(fid)
        running_here = service.is_running_here(fid)
        engine = service.engine
        keys = None
        if engine.key_budgets is not None:  # the flow's budget keys: one store read
            compiled = engine.compiled_for(snapshot.flow.graph)
            keys = await engine.key_budgets.graph_usage(compiled, engine.executor_for)
        return flow_view(
            snapshot, running_here=running_here, budgets=engine.budgets, key_usage=keys
        )

    @router.get(
        "/flows/{flow_id}/history", tags=["history"], responses=error_responses(400, 404, 503)
    )
    async def flow_history(flow_id: str) -> dict[str, Any]:
        """The flow's checkpoints, one per commit, oldest first: node, visit, attempt,
        outcome, time, and the memory and messages as they stood after it; for a fork,
        the flow and checkpoint it began from."""
        fid = _flow_id(flow_id)
        history, lineage = await service.history(fid)
        forked_from = None if lineage is None else {"flow_id": str(lineage[0]), "at": lineage[1]}
        return {
            "flow_id": str(fid),
            "forked_from": forked_from,
            "checkpoints": [c.to_dict() for c in history],
        }

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
        fid = _flow_id(flow_id)
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

    @router.post(
        "/flows/{flow_id}/resume",
        tags=["flows"],
        status_code=202,
        responses=error_responses(400, 404, 409, 413, 503),
    )
    async def resume_flow(flow_id: str, body: ResumeFlow) -> JSONResponse:
        """Answer a waiting node and continue the flow: ``202`` (accepted), or with
        ``wait`` its result (``200``); ``409 flow_not_waiting`` if nothing waits."""
        fid = _flow_id(flow_id)
        result = await service.resume(fid, body.answer, body.node, wait=body.wait)
        if result is not None:
            return JSONResponse(result_view(result), status_code=200)
        return JSONResponse({"flow_id": str(fid), "status": "running"}, status_code=202)

    @router.post(
        "/flows/{flow_id}/edit",
        tags=["history"],
        responses=error_responses(400, 404, 409, 413, 503),
    )
    async def edit_flow(flow_id: str, body: EditFlow) -> dict[str, Any]:
        """Edit a paused, failed or stopped flow: set memory values, replace the input
        messages of its waiting (or failed) node; logged as a ``FlowEdited`` event.
        ``409`` for a flow in another state or held by another process."""
        fid = _flow_id(flow_id)
        messages = None if body.messages is None else [m.model_dump() for m in body.messages]
        seq = await service.edit(fid, body.memory, messages, body.node)
        return {"flow_id": str(fid), "checkpoint": seq}

    @router.post(
        "/flows/{flow_id}/retry",
        tags=["history"],
        status_code=202,
        responses=error_responses(400, 404, 409, 413, 422, 503),
    )
    async def retry_flow(flow_id: str, body: RetryFlow | None = None) -> JSONResponse:
        """Continue a failed flow from the activation that failed it (``409
        flow_not_failed`` for a flow that did not fail); committed nodes stay."""
        fid = _flow_id(flow_id)
        wait = body is not None and body.wait
        result = await service.retry(fid, wait=wait)
        if result is not None:
            return JSONResponse(result_view(result), status_code=200)
        return JSONResponse({"flow_id": str(fid), "status": "running"}, status_code=202)

    @router.post(
        "/flows/{flow_id}/fork",
        tags=["history"],
        status_code=202,
        responses=error_responses(400, 404, 409, 413, 422, 503),
    )
    async def fork_flow(flow_id: str, body: ForkFlow) -> JSONResponse:
        """A new flow from checkpoint ``at`` of this one (see the history) with the
        edits applied, run at once: ``202`` with its id, or with ``wait`` its result."""
        fid = _flow_id(flow_id)
        new_id, result = await service.fork(fid, body.edits(), wait=body.wait)
        if result is not None:
            return JSONResponse(result_view(result), status_code=200)
        return JSONResponse(
            {
                "flow_id": str(new_id),
                "status": "running",
                "events": f"/api/flows/{new_id}/events",
            },
            status_code=202,
        )

    @router.post(
        "/flows/{flow_id}/stop",
        tags=["flows"],
        status_code=202,
        responses=error_responses(400, 404, 409, 503),
    )
    async def stop_flow(flow_id: str) -> dict[str, str]:
        """Stop a running or paused flow."""
        fid = _flow_id(flow_id)
        await service.stop(fid)
        return {"flow_id": str(fid), "status": "stopping"}

    @router.delete(
        "/flows/{flow_id}", tags=["flows"], responses=error_responses(400, 404, 409, 503)
    )
    async def delete_flow(flow_id: str) -> dict[str, str]:
        """Delete an ended or paused flow and everything stored for it."""
        fid = _flow_id(flow_id)
        await service.delete(fid)
        return {"flow_id": str(fid), "status": "deleted"}

    return router


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
