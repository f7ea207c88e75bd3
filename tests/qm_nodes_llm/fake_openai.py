"""A small OpenAI-compatible Chat Completions server on loopback, for the provider tests.

It answers every ``POST`` (``/v1/chat/completions``, and Anthropic's ``/v1/messages``)
with scripted replies (JSON, streamed SSE chunks, error statuses, delays) and records
every request body it received; the real ``openai`` and ``anthropic`` SDKs are the
clients. Given a model list, it also answers ``GET /api/tags`` like Ollama.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    body: dict[str, Any] | None = None
    #: SSE data, each a JSON object or an (event name, JSON object) pair.
    chunks: list[dict[str, Any] | tuple[str, dict[str, Any]]] | None = None
    #: End the stream with ``data: [DONE]`` (OpenAI's convention, not Anthropic's).
    done: bool = True
    #: Seconds before the status line (a slow server, for timeouts).
    delay: float = 0.0
    #: Seconds between SSE chunks (a slow stream, for stop).
    chunk_delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    #: Hold the answer until the test sets this (at most 60 s): a call that runs as
    #: long as the test needs, whatever the machine's load.
    gate: threading.Event | None = None


def completion(
    text: str | None = "",
    *,
    model: str = "fake-model",
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str = "stop",
) -> Reply:
    """A non-streamed chat completion."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
            }
            for call in tool_calls
        ]
        finish_reason = "tool_calls"
    return Reply(
        body={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        }
    )


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def streamed(
    tokens: list[str],
    *,
    model: str = "fake-model",
    tool_calls: list[dict[str, Any]] | None = None,
    chunk_delay: float = 0.0,
) -> Reply:
    """A streamed completion: one SSE chunk per token, tool calls split over two chunks."""
    chunks = [_chunk(model, {"role": "assistant", "content": ""})]
    chunks += [_chunk(model, {"content": token}) for token in tokens]
    for index, call in enumerate(tool_calls or []):
        arguments = json.dumps(call["arguments"])
        half = len(arguments) // 2
        chunks.append(
            _chunk(
                model,
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["name"], "arguments": arguments[:half]},
                        }
                    ]
                },
            )
        )
        chunks.append(
            _chunk(
                model,
                {"tool_calls": [{"index": index, "function": {"arguments": arguments[half:]}}]},
            )
        )
    chunks.append(_chunk(model, {}, "tool_calls" if tool_calls else "stop"))
    return Reply(chunks=chunks, chunk_delay=chunk_delay)


def anthropic_streamed(tokens: list[str], *, model: str = "claude-test") -> Reply:
    """A streamed Anthropic Messages answer (server-sent events)."""
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 1},
    }
    events: list[dict[str, Any] | tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": message}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
    ]
    events += [
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}},
        )
        for t in tokens
    ]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(tokens)},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return Reply(chunks=events, done=False)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(
        status=status,
        body={"error": {"message": message, "type": "fake", "code": None}},
        headers=dict(headers or {}),
    )


class FakeOpenAI:
    """The server. ``requests`` holds each received body (decoded JSON), in order."""

    def __init__(self, ollama_models: list[str] | None = None) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.ollama_models = ollama_models
        #: Set when a client hung up in the middle of a streamed answer.
        self.client_left = threading.Event()
        #: The answer when nothing is scripted (None: an error 500).
        self.default: Reply | None = None
        #: Requests being answered now, and the most there ever were at once (a
        #: request counts from its arrival until its answer starts to be sent).
        self.in_flight = 0
        self.most_in_flight = 0
        #: When each request arrived (``time.monotonic()``), in order.
        self.arrivals: list[float] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reply(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def _next(self) -> Reply:
        with self._lock:
            if self.replies:
                return self.replies.popleft()
        if self.default is not None:
            return self.default
        return error(500, "the test scripted no reply for this request")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send_json(self, status: int, body: Any, headers: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/api/tags" and server.ollama_models is not None:
                    models = [{"name": name, "model": name} for name in server.ollama_models]
                    self._send_json(200, {"models": models}, {})
                else:
                    self._send_json(404, {"error": "not found"}, {})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with server._lock:
                    server.requests.append(json.loads(raw or b"{}"))
                    server.paths.append(self.path)
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                    server.arrivals.append(time.monotonic())
                    server.in_flight += 1
                    server.most_in_flight = max(server.most_in_flight, server.in_flight)
                try:
                    reply = server._next()
                    if reply.delay:
                        time.sleep(reply.delay)
                    if reply.gate is not None:
                        reply.gate.wait(60)
                finally:
                    with server._lock:
                        server.in_flight -= 1
                try:
                    if reply.chunks is None:
                        self._send_json(reply.status, reply.body or {}, reply.headers)
                        return
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Cache-Control", "no-cache")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for chunk in reply.chunks:
                        if isinstance(chunk, tuple):
                            name, data = chunk
                            self.wfile.write(f"event: {name}\n".encode())
                            chunk = data
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                        if reply.chunk_delay:
                            time.sleep(reply.chunk_delay)
                    if reply.done:
                        self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                    self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    server.client_left.set()

        return Handler
