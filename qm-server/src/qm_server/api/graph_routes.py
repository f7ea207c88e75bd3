"""The ``/api/graphs`` routes: the graphs of the graphs folder, and one graph."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from qm_server.errors import ApiError, error_responses
from qm_server.graphs import GraphFolder
from qm_server.views import graph_view


def add_graph_routes(router: APIRouter, graphs: GraphFolder) -> None:
    """Add the graph routes over ``graphs`` to ``router``."""

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
