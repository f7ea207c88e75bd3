"""Graphs and measuring tools shared by the thread dispatcher tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from quartermaster_engine import GraphSpec
from quartermaster_engine.testing import build_graph

#: Worker threads of a ThreadDispatcher are named "<prefix>_<n>".
WORKER_PREFIX = "qm-thread_"


def fan_graph(
    width: int,
    branch: str = "branch",
    join: str = "join",
    *,
    branch_fields: dict[str, Any] | None = None,
) -> GraphSpec:
    """Start -> b0..b<width-1> (type ``branch``) -> J (``join``, AwaitAll) -> End."""
    nodes: dict[str, str | dict[str, Any]] = {"Start": "Start1"}
    for i in range(width):
        nodes[f"b{i}"] = {"type": branch, **(branch_fields or {})}
    nodes["J"] = {"type": join, "traverse_in": "AwaitAll"}
    nodes["End"] = "End1"
    edges = [("Start", f"b{i}") for i in range(width)]
    edges += [(f"b{i}", "J") for i in range(width)]
    edges.append(("J", "End"))
    return build_graph(nodes, edges)


def typed_fan_graph(types: list[str]) -> GraphSpec:
    """Start -> one branch per entry of ``types`` (named <type><n>) -> J (AwaitAll) -> End."""
    names = [f"{t}{i}" for i, t in enumerate(types)]
    nodes: dict[str, str | dict[str, Any]] = {"Start": "Start1"}
    nodes.update(dict(zip(names, types)))
    nodes["J"] = {"type": "join", "traverse_in": "AwaitAll"}
    nodes["End"] = "End1"
    edges = [("Start", n) for n in names] + [(n, "J") for n in names] + [("J", "End")]
    return build_graph(nodes, edges)


class Meter:
    """Counts calls running at once, per key, under a lock; keeps the peak."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.calls: dict[str, int] = {}

    @contextmanager
    def running(self, key: str) -> Iterator[None]:
        with self._lock:
            self.now[key] = self.now.get(key, 0) + 1
            self.peak[key] = max(self.peak.get(key, 0), self.now[key])
            self.calls[key] = self.calls.get(key, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self.now[key] -= 1


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``check`` until it holds or ``timeout`` passes; return whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.002)
    return check()


def worker_threads(prefix: str = WORKER_PREFIX) -> list[threading.Thread]:
    """Live threads whose name starts with ``prefix``."""
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


def free_port() -> int:
    """A TCP port nothing listens on right now (never Redis's default 6379)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port if port != 6379 else free_port()


class RedisServer:
    """A redis-server process owned by the tests, on a free port in a temp folder.
    ``start`` raises, failing the test, when the server cannot start."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed; these tests need it")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.directory), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not answer within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
