"""The routes of a flow's history: its checkpoints, edits, retries and forks
(docs/history.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from qm_server.api.bodies import (
    EditFlow,
    ForkFlow,
    RetryFlow,
    parse_flow_id,
)
from qm_server.errors import error_responses
from qm_server.service import FlowService
from qm_server.views import result_view


def add_history_routes(router: APIRouter, service: FlowService) -> None:
    """Add the history routes to ``router``."""

    @router.get(
        "/flows/{flow_id}/history", tags=["history"], responses=error_responses(400, 404, 503)
    )
    async def flow_history(flow_id: str) -> dict[str, Any]:
        """The flow's checkpoints, one per commit, oldest first: node, visit, attempt,
        outcome, time, and the memory and messages as they stood after it; for a fork,
        the flow and checkpoint it began from."""
        fid = parse_flow_id(flow_id)
        history, lineage = await service.history(fid)
        forked_from = None if lineage is None else {"flow_id": str(lineage[0]), "at": lineage[1]}
        return {
            "flow_id": str(fid),
            "forked_from": forked_from,
            "checkpoints": [c.to_dict() for c in history],
        }

    @router.post(
        "/flows/{flow_id}/edit",
        tags=["history"],
        responses=error_responses(400, 404, 409, 413, 503),
    )
    async def edit_flow(flow_id: str, body: EditFlow) -> dict[str, Any]:
        """Edit a paused, failed or stopped flow: set memory values, replace the input
        messages of its waiting (or failed) node; logged as a ``FlowEdited`` event.
        ``409`` for a flow in another state or held by another process."""
        fid = parse_flow_id(flow_id)
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
        fid = parse_flow_id(flow_id)
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
        fid = parse_flow_id(flow_id)
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
