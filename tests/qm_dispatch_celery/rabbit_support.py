"""A rabbitmq-server of the tests' own: its own node name, ports, epmd and data
folder in a temporary directory; never the machine's own server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from qm_redis_support import free_port

#: The server script itself (the /usr/sbin wrapper switches to the system's user).
_SCRIPTS = (
    Path("/usr/lib/rabbitmq/bin/rabbitmq-server"),
    Path("/lib/rabbitmq/bin/rabbitmq-server"),
)


class RabbitServer:
    """``start`` raises (the test fails) when the server is missing or does not answer."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.epmd_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self) -> RabbitServer:
        script = next((p for p in _SCRIPTS if p.exists()), None)
        if script is None or shutil.which("erl") is None:
            raise RuntimeError("rabbitmq-server is not installed: the RabbitMQ tests need it")
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        (d / "enabled_plugins").write_text("[].\n")
        (d / "rabbitmq.conf").write_text("loopback_users = none\n")
        env = {
            **os.environ,
            "HOME": str(d),  # the Erlang cookie
            "RABBITMQ_NODENAME": f"qmtest{uuid.uuid4().hex[:8]}@localhost",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(d / "pid"),
        }
        env.pop("RABBITMQ_ALLOW_INPUT", None)
        log = d / "server.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(script)],
                cwd=d,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 90
        while "Starting broker... completed" not in log.read_text() or not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"rabbitmq-server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # The node started an epmd of its own on our port: end that one only.
        for environ in Path("/proc").glob("[0-9]*/environ"):
            try:
                mine = f"ERL_EPMD_PORT={self.epmd_port}\0".encode() in environ.read_bytes()
                if mine and (environ.parent / "comm").read_text().strip() == "epmd":
                    os.kill(int(environ.parent.name), signal.SIGTERM)
            except (OSError, ValueError):
                continue
