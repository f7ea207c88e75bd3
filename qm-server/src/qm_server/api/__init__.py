"""The HTTP API under ``/api``: graphs, flows, their events (SSE), resume, stop, delete,
and their history: checkpoints, edits, retries and forks.

One module per resource: `graph_routes`, `flow_routes`, `event_routes` (SSE),
`history_routes`; the request bodies and path ids are in `bodies`.
"""

from __future__ import annotations

from fastapi import APIRouter

from qm_server.api.bodies import (
    MAX_GRAPH_DEPTH,
    MAX_OFFSET,
    EditFlow,
    EditMessage,
    ForkFlow,
    ResumeFlow,
    RetryFlow,
    StartFlow,
)
from qm_server.api.event_routes import add_event_routes
from qm_server.api.flow_routes import add_flow_routes
from qm_server.api.graph_routes import add_graph_routes
from qm_server.api.history_routes import add_history_routes
from qm_server.errors import error_responses
from qm_server.event_source import EventSource
from qm_server.graphs import GraphFolder
from qm_server.service import FlowService

__all__ = [
    "MAX_GRAPH_DEPTH",
    "MAX_OFFSET",
    "EditFlow",
    "EditMessage",
    "ForkFlow",
    "ResumeFlow",
    "RetryFlow",
    "StartFlow",
    "api_router",
]


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

    add_graph_routes(router, graphs)
    add_flow_routes(router, service, graphs, allow_inline_graphs=allow_inline_graphs)
    add_history_routes(router, service)
    add_event_routes(router, service, events, heartbeat=heartbeat)
    return router
