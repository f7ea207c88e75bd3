"""A real qm-server for the tests: uvicorn on a free port in a thread (or ``qm serve`` in
a subprocess), graphs in a temporary folder, and a small SSE reader over httpx."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from qm_server import ServerSettings, create_app
from qm_server.cli import GRACEFUL_SHUTDOWN_SECONDS
from qm_server.service import FlowService
from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Typewriter:
    """Streams its input word by word as tokens (a pause between tokens), then
    outputs it. ``metadata.repeat`` repeats the input that many times."""

    async def execute(self, context: Any) -> NodeResult:
        words = (context.input_text + " ") * int(context.get_meta("repeat", 1))
        tokens = [w + " " for w in words.split()]
        for token in tokens:
            context.emit_token(token)
            await asyncio.sleep(float(context.get_meta("pause", 0.002)))
        return NodeResult(output_text="".join(tokens).strip())


class Sleeper:
    """Sleeps ``metadata.seconds`` (default 60): a node to stop while it runs."""

    async def execute(self, context: Any) -> NodeResult:
        await asyncio.sleep(float(context.get_meta("seconds", 60)))
        return NodeResult(output_text="woke up")


def blocker(context: Any) -> NodeResult:
    """A plain ``def`` executor that blocks its thread ``metadata.seconds`` (default 2)."""
    time.sleep(float(context.get_meta("seconds", 2)))
    return NodeResult(output_text="unblocked")


def gate(context: Any) -> NodeResult:
    """Fails unless flow memory holds ``limit`` (set by an edit before a retry)."""
    limit = context.memory.get("limit")
    if limit is None:
        raise RuntimeError("no limit in flow memory")
    return NodeResult(output_text=f"limit {limit}: {context.input_text}")


def test_registry() -> SimpleNodeRegistry:
    return SimpleNodeRegistry(
        {
            "test.Typewriter": Typewriter(),
            "test.Sleeper": Sleeper(),
            "test.Blocker": blocker,
            "test.Gate": gate,
        }
    )


GATE_YAML = """\
name: Gate
nodes:
  - {name: Start, type: Start1}
  - {name: Gate, type: test.Gate}
  - {name: End, type: End1}
edges:
  - {from: Start, to: Gate}
  - {from: Gate, to: End}
"""


TYPEWRITER_YAML = """\
name: Typewriter
nodes:
  - {name: Start, type: Start1}
  - {name: Type, type: test.Typewriter, metadata: {repeat: REPEAT, pause: PAUSE}}
  - {name: End, type: End1}
edges:
  - {from: Start, to: Type}
  - {from: Type, to: End}
"""

SLEEPER_YAML = """\
name: Sleeper
nodes:
  - {name: Start, type: Start1}
  - {name: Nap, type: test.Sleeper}
  - {name: End, type: End1}
edges:
  - {from: Start, to: Nap}
  - {from: Nap, to: End}
"""


def graphs_folder(path: Path, *, repeat: int = 1, pause: float = 0.002) -> Path:
    """The two examples the README uses, plus the test graphs."""
    path.mkdir(parents=True, exist_ok=True)
    for name in ("ticket-router.yaml", "approval-loop.yaml"):
        shutil.copy(ROOT / "examples" / name, path / name)
    typewriter = TYPEWRITER_YAML.replace("REPEAT", str(repeat)).replace("PAUSE", str(pause))
    (path / "typewriter.yaml").write_text(typewriter)
    slow = TYPEWRITER_YAML.replace("REPEAT", "1").replace("PAUSE", "0.02")
    slow = slow.replace("name: Typewriter", "name: Slow typewriter")
    (path / "slow-typewriter.yaml").write_text(slow)
    (path / "sleeper.yaml").write_text(SLEEPER_YAML)
    return path


class LiveServer:
    """``create_app(settings)`` served by uvicorn on a free port, in a thread."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.port = free_port()
        self.app = create_app(settings, node_registry=test_registry())
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "the test server did not stop"

    def app_service(self) -> FlowService:
        """The server's `FlowService` (behind the security middleware)."""
        service: FlowService = self.app.app.state.service
        return service

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@dataclass(frozen=True)
class Sse:
    """One server-sent event."""

    id: str
    event: str
    data: dict[str, Any]

    @property
    def number(self) -> int:
        """The event's number in the flow's log (a token's: the event before it)."""
        return int(self.id.partition(".")[0])


def logged_numbers(events: list[Sse]) -> list[int]:
    """The numbers of the events that are not tokens (those the store logs)."""
    return [e.number for e in events if e.event != "TokenGenerated"]


def sse_events(
    client: httpx.Client,
    path: str,
    *,
    last_event_id: str | None = None,
    limit: int | None = None,
    until: str | None = None,
    on_event: Callable[[Sse], object] | None = None,
) -> list[Sse]:
    """Read ``path``'s event stream until the server ends it, or ``limit`` events,
    or (``until``) the first event of that type; ``on_event`` sees each as read."""
    headers = {"last-event-id": last_event_id} if last_event_id is not None else {}
    found: list[Sse] = []
    with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for block in _blocks(response.iter_lines()):
            if "data" not in block:
                continue
            found.append(Sse(block["id"], block["event"], json.loads(block["data"])))
            if on_event is not None:
                on_event(found[-1])
            if limit is not None and len(found) >= limit:
                break
            if until is not None and found[-1].event == until:
                break
    return found


def _blocks(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    block: dict[str, str] = {}
    for line in lines:
        if not line:
            if block:
                yield block
            block = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            block[key] = value.removeprefix(" ")
    if block:
        yield block
