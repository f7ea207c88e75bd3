"""What stands between the network and the flows: the bearer token, the body size
limit and security headers (secrets are masked by `quartermaster_engine.redaction`).

`SecurityMiddleware` is plain ASGI (no per-request objects on the hot path).
A browser cannot put a header on a page load or an ``EventSource``: opening
``/?token=...`` once sets an HttpOnly, SameSite=Strict cookie holding the token and
redirects to ``/`` (the token leaves the address bar); requests authenticated by
that cookie that change something must also carry ``X-QM-Request: 1``, which no
cross-site form can send.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from fastapi import HTTPException

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "qm_token"
CSRF_HEADER = b"x-qm-request"
#: Routes open to anyone.
PUBLIC_PATHS = frozenset({"/api/health"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: The page loads only its own script and style, talks only to this origin, and
#: cannot be framed; no inline script or style runs.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class _BodyTooLarge(HTTPException):
    """Raised while the body is read: FastAPI passes HTTP exceptions on to the
    error handlers (any other error reading a body becomes a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes")


def _error(status: int, code: str, message: str) -> tuple[int, bytes]:
    return status, json.dumps({"error": {"code": code, "message": message}}).encode()


class SecurityMiddleware:
    """Token check (constant time), body size limit and security headers."""

    def __init__(self, app: ASGIApp, *, token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *_SECURITY_HEADERS]
            await send(message)

        headers = dict(scope.get("headers", ()))
        if self.token is not None and scope["path"] not in PUBLIC_PATHS:
            refusal = self._refusal(scope, headers)
            if refusal is not None:
                await refusal(send_with_headers)
                return
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await self._too_large(send_with_headers)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = True
            await send_with_headers(message)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge(self.max_body)
            return message

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await self._too_large(send_with_headers)

    def _refusal(
        self, scope: Scope, headers: dict[bytes, bytes]
    ) -> Callable[[Send], Awaitable[None]] | None:
        """None when the request carries the token; else how to answer it."""
        assert self.token is not None
        auth = headers.get(b"authorization", b"")
        scheme, _, presented = auth.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(presented.strip(), self.token):
            return None
        cookie = _cookie(headers)
        if cookie is not None and hmac.compare_digest(cookie, self.token):
            if scope["method"] in _SAFE_METHODS or headers.get(CSRF_HEADER) == b"1":
                return None
            return _answer(*_error(403, "missing_request_header", "X-QM-Request: 1 required"))
        if scope["path"] == "/" and scope["method"] == "GET":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            offered = query.get("token", [""])[0].encode()
            if offered and hmac.compare_digest(offered, self.token):
                return _login_redirect(offered)
        return _answer(
            *_error(401, "unauthorized", "a valid bearer token is required"),
            extra=[(b"www-authenticate", b'Bearer realm="qm-server"')],
        )

    async def _too_large(self, send: Send) -> None:
        status, body = _error(
            413, "body_too_large", f"request body is larger than {self.max_body} bytes"
        )
        await _answer(status, body)(send)


def _cookie(headers: dict[bytes, bytes]) -> bytes | None:
    raw = headers.get(b"cookie")
    if raw is None:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw.decode("latin-1"))
    except Exception:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value.encode() if morsel is not None else None


def _answer(
    status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> Callable[[Send], Awaitable[None]]:
    async def respond(send: Send) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *(extra or []),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return respond


def _login_redirect(token: bytes) -> Callable[[Send], Awaitable[None]]:
    cookie = f"{COOKIE}={token.decode()}; HttpOnly; SameSite=Strict; Path=/".encode()
    return _answer(303, b"", extra=[(b"location", b"/"), (b"set-cookie", cookie)])
