"""`create_app`: the ASGI application of a server (API, page, security)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response

from qm_server.api import api_router
from qm_server.errors import ApiError, install_error_handlers
from qm_server.event_source import InProcessEventLog
from qm_server.graphs import GraphFolder
from qm_server.security import SecurityMiddleware
from qm_server.service import FlowService
from qm_server.settings import ServerSettings
from quartermaster_engine.config import EngineConfig
from quartermaster_engine.nodes import NodeRegistry
from quartermaster_engine.redaction import redact_tree

logger = logging.getLogger("qm_server")

_STATIC = resources.files("qm_server") / "static"
_ASSETS = {
    "app.js": "text/javascript",
    "dom.js": "text/javascript",
    "edit.js": "text/javascript",
    "graph.js": "text/javascript",
    "history.js": "text/javascript",
    "maps.js": "text/javascript",
    "panel.js": "text/javascript",
    "timeline.js": "text/javascript",
    "waterfall.js": "text/javascript",
    "style.css": "text/css",
    "favicon.svg": "image/svg+xml",
}


def create_app(settings: ServerSettings, *, node_registry: NodeRegistry | None = None) -> Any:
    """The server's ASGI app. ``node_registry`` adds executors to the installed ones."""
    config = EngineConfig.load(settings.config)
    events = InProcessEventLog()
    graphs = GraphFolder(settings.graphs_dir)
    service = FlowService(config, events, node_registry=node_registry, graphs_folder=graphs.folder)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.open()
        logger.info(
            "qm-server: graphs from %s; store %s",
            graphs.folder,
            redact_tree(config.model_dump(mode="json")["store"], "store"),
        )
        try:
            yield
        finally:
            await service.close()

    app = FastAPI(
        title="Quartermaster server",
        summary="Start, follow (SSE), answer and stop Quartermaster flows.",
        version="0.2.0",
        lifespan=lifespan,
        docs_url=None,  # the Swagger page loads scripts from a CDN; the schema stays
        redoc_url=None,
    )
    install_error_handlers(app)
    app.include_router(
        api_router(
            service,
            graphs,
            events,
            allow_inline_graphs=settings.allow_inline_graphs,
            heartbeat=settings.heartbeat_seconds,
        )
    )

    @app.get("/api/server", tags=["server"])
    async def server_info() -> dict[str, Any]:
        """The effective engine configuration, secrets masked."""
        return {
            "config": redact_tree(service.config.model_dump(mode="json")),
            "inline_graphs": settings.allow_inline_graphs,
            "max_body_bytes": settings.max_body_bytes,
        }

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return FileResponse(str(_STATIC / "index.html"), media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        media_type = _ASSETS.get(name)
        if media_type is None:
            raise ApiError(404, "not_found", f"no asset {name!r}")
        return FileResponse(str(_STATIC / name), media_type=media_type)

    app.state.service = service
    return SecurityMiddleware(app, token=settings.token, max_body_bytes=settings.max_body_bytes)
