"""The ``/api/flows`` routes of flows themselves: start, list, show, resume, stop, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from qm_server.api.bodies import (
    MAX_OFFSET,
    ResumeFlow,
    StartFlow,
    parse_flow_id,
)
from qm_server.errors import ApiError, error_responses
from qm_server.graphs import GraphFolder, graph_from_body
from qm_server.service import FlowService
from qm_server.views import flow_summary, flow_view, result_view
from quartermaster_engine.stores.records import FlowStatus


def add_flow_routes(
    router: APIRouter, service: FlowService, graphs: GraphFolder, *, allow_inline_graphs: bool
) -> None:
    """Add the flow routes to ``router``; graphs to start come from ``graphs`` or, if
    ``allow_inline_graphs``, from the request."""

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
        fid = parse_flow_id(flow_id)
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

    @router.post(
        "/flows/{flow_id}/resume",
        tags=["flows"],
        status_code=202,
        responses=error_responses(400, 404, 409, 413, 503),
    )
    async def resume_flow(flow_id: str, body: ResumeFlow) -> JSONResponse:
        """Answer a waiting node and continue the flow: ``202`` (accepted), or with
        ``wait`` its result (``200``); ``409 flow_not_waiting`` if nothing waits."""
        fid = parse_flow_id(flow_id)
        result = await service.resume(fid, body.answer, body.node, wait=body.wait)
        if result is not None:
            return JSONResponse(result_view(result), status_code=200)
        return JSONResponse({"flow_id": str(fid), "status": "running"}, status_code=202)

    @router.post(
        "/flows/{flow_id}/stop",
        tags=["flows"],
        status_code=202,
        responses=error_responses(400, 404, 409, 503),
    )
    async def stop_flow(flow_id: str) -> dict[str, str]:
        """Stop a running or paused flow."""
        fid = parse_flow_id(flow_id)
        await service.stop(fid)
        return {"flow_id": str(fid), "status": "stopping"}

    @router.delete(
        "/flows/{flow_id}", tags=["flows"], responses=error_responses(400, 404, 409, 503)
    )
    async def delete_flow(flow_id: str) -> dict[str, str]:
        """Delete an ended or paused flow and everything stored for it."""
        fid = parse_flow_id(flow_id)
        await service.delete(fid)
        return {"flow_id": str(fid), "status": "deleted"}
