"""Errors the API answers with: JSON ``{"error": {"code", "message", "problems"?}}``.

``code`` is stable (clients branch on it); ``message`` is for people. The
engine's own errors about a request (text that is not Unicode, a flow deleted or
ended meanwhile, a flow another process holds) are answered with their 4xx and
code wherever they are raised; anything else is a JSON ``500 internal_error``,
never a dropped connection.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from quartermaster_engine.runner import FlowBusyError, FlowStateError, StoreUnavailableError
from quartermaster_engine.runner.arguments import InvalidTextError
from quartermaster_engine.stores.base import FlowNotFoundError

logger = logging.getLogger("qm_server")


class ApiError(Exception):
    """An error answered as JSON with HTTP ``status`` and a stable ``code``."""

    def __init__(
        self, status: int, code: str, message: str, problems: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problems = problems

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.problems is not None:
            error["problems"] = self.problems
        return {"error": error}

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def unknown_flow(flow_id: object) -> ApiError:
    return ApiError(404, "unknown_flow", f"no flow {flow_id} in the store")


#: The engine's errors a request can cause: (exception type, status, code), the
#: most specific first.
ENGINE_ERRORS: tuple[tuple[type[Exception], int, str], ...] = (
    (InvalidTextError, 400, "invalid_text"),
    (FlowNotFoundError, 404, "unknown_flow"),
    (FlowBusyError, 409, "flow_busy"),
    (FlowStateError, 409, "flow_state_conflict"),
    (StoreUnavailableError, 503, "store_unavailable"),
)

#: The error body every error response has, for the OpenAPI document.
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "problems": {"type": "array", "items": {"type": "string"}},
            },
        }
    },
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of a route that can answer ``statuses`` (besides 422,
    which FastAPI lists itself) in the one error shape."""
    return {
        status: {
            "description": _DESCRIPTIONS.get(status, "error"),
            "content": {"application/json": {"schema": ERROR_SCHEMA}},
        }
        for status in statuses
    }


_DESCRIPTIONS = {
    400: "bad request: invalid text, flow id, Last-Event-ID or graph",
    401: "no or wrong token",
    403: "forbidden (inline graphs off, cross-site request)",
    404: "unknown flow or graph",
    409: "the flow is not in a state that allows it",
    413: "body too large",
    422: "invalid request body or parameters",
    500: "internal error",
    503: "the store is unavailable",
}

_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    401: "unauthorized",
}


def _validation_problem(err: Any) -> str:
    where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
    return f"{where}: {err.get('msg', 'invalid')}"


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app serves at the request's path (Starlette's
    own Allow names only the first route's, where GET and POST are two routes)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ]


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error, ours and the framework's, in the one JSON shape."""

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [_validation_problem(err) for err in exc.errors()]
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        return ApiError(422, "validation_error", f"invalid request: {count}", problems).response()

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return ApiError(exc.status_code, code, str(exc.detail)).response(headers)

    async def engine_error(request: Request, exc: Exception) -> JSONResponse:
        for kind, status, code in ENGINE_ERRORS:
            if isinstance(exc, kind):
                return ApiError(status, code, str(exc).split("\n")[0]).response()
        raise exc  # not registered for other types

    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return ApiError(500, "internal_error", "internal error; see the server's log").response()

    app.add_exception_handler(ApiError, api_error)
    for kind, _, _ in ENGINE_ERRORS:
        app.add_exception_handler(kind, engine_error)
    app.add_exception_handler(Exception, internal_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
