"""A real redis-server for the tests: started on a free port in a temp dir, never 6379."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from qm_store_redis import RedisStore


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    assert port != 6379
    return port


class RedisServer:
    """A redis-server process the tests own. ``start`` raises (the test fails) when
    the binary is missing or the server does not answer."""

    def __init__(
        self,
        directory: Path,
        *,
        appendonly: bool = False,
        cluster: bool = False,
        own_all_slots: bool = True,
        port: int | None = None,
    ):
        self.directory = directory
        self.appendonly = appendonly
        self.cluster = cluster
        self.own_all_slots = own_all_slots
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: the Redis store tests need it")
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        if self.appendonly:
            # fsync each write: a SIGKILLed server must keep every acknowledged commit.
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            args += ["--cluster-port", str(free_port())]
        stderr = self.directory / "redis.stderr"
        with stderr.open("ab") as err:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.directory / "redis.log"
                raise RuntimeError(
                    f"redis-server exited with {self.proc.returncode}: {stderr.read_text()}"
                    f"{log.read_text() if log.exists() else ''}"
                )
            if self.ping():
                if self.cluster and self.own_all_slots:
                    self._own_all_slots()
                return self
            time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not answer within 10 s")

    def _own_all_slots(self) -> None:
        """Make this one node a whole Redis Cluster: it then enforces CROSSSLOT rules."""
        client = self.client()
        try:
            if client.cluster("INFO")["cluster_state"] != "ok":
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
            deadline = time.monotonic() + 10
            while client.cluster("INFO")["cluster_state"] != "ok":
                if time.monotonic() > deadline:
                    raise RuntimeError("single-node cluster did not reach state ok")
                time.sleep(0.05)
        finally:
            client.close()

    def client(self) -> redis.Redis:
        """A synchronous redis-py client, for tests to look at what the store wrote."""
        return redis.Redis(port=self.port, decode_responses=True, protocol=2)

    def ping(self) -> bool:
        try:
            return self.command("PING") == "+PONG"
        except OSError:
            return False

    def command(self, *args: str) -> str:
        """One command over a raw socket; the first reply line (tests only)."""
        payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(payload.encode())
            data = b""
            while not data.endswith(b"\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data.decode().split("\r\n")[0]

    def kill(self) -> None:
        """SIGKILL: the server vanishes without saving anything more."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class RedisClusterOfThree:
    """Three redis-server nodes joined into a Redis Cluster by ``redis-cli --cluster``."""

    def __init__(self, directory: Path) -> None:
        self.nodes = [
            RedisServer(directory / f"node{i}", cluster=True, own_all_slots=False) for i in range(3)
        ]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> RedisClusterOfThree:
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed: the Redis Cluster tests need it")
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        for node in self.nodes:
            client = node.client()
            try:
                while client.cluster("INFO")["cluster_state"] != "ok":
                    if time.monotonic() > deadline:
                        raise RuntimeError("the cluster did not reach state ok within 30 s")
                    time.sleep(0.05)
            finally:
                client.close()
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def keyslot_owner(self, key: str) -> int:
        """The port of the node serving ``key``."""
        client = self.nodes[0].client()
        try:
            slot = client.cluster("KEYSLOT", key)
            for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return int(master[1])
        finally:
            client.close()
        raise LookupError(key)


def unique_prefix() -> str:
    """A key prefix no other test uses: tests share one server without flushing it."""
    return f"t{uuid.uuid4().hex[:12]}"


def store_for(server: RedisServer, prefix: str, **kwargs: Any) -> RedisStore:
    return RedisStore(server.url, key_prefix=prefix, **kwargs)


def env_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
