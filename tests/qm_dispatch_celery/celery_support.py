"""A test fleet: a qm.toml on the tests' redis-server (broker and store, each test
on its own key prefix and queue; or another ``[store]``) and real ``qm worker``
processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quartermaster_engine import FlowRunner
from quartermaster_engine.testing import call
from quartermaster_engine.types import GraphSpec

HERE = Path(__file__).parent
QM = Path(sys.executable).with_name("qm")


class Fleet:
    """One test's configuration, side file and worker processes."""

    def __init__(
        self,
        directory: Path,
        redis_url: str,
        broker_url: str | None = None,
        *,
        store: dict[str, Any] | None = None,
        **dispatcher: Any,
    ) -> None:
        """``store``: the ``[store]`` table (default: redis on ``redis_url``)."""
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.redis_url = redis_url
        self.prefix = f"t{uuid.uuid4().hex[:10]}"
        self.side = directory / "side.log"
        self.config = directory / "qm.toml"
        settings = {
            "broker_url": broker_url or redis_url,
            "queue": f"{self.prefix}-q",
            "stop_poll": 0.2,
            "refuse_delay": 0.2,
            **dispatcher,
        }
        store = store or {"name": "redis", "url": redis_url, "key_prefix": self.prefix}
        lines = [
            "[store]",
            *(f"{k} = {_toml(v)}" for k, v in store.items()),
            "",
            "[dispatcher]",
            'name = "celery"',
            *(f"{k} = {_toml(v)}" for k, v in settings.items()),
        ]
        self.config.write_text("\n".join(lines) + "\n")
        self.workers: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "QM_TEST_SIDE": str(self.side),
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            **extra,
        }

    def start_workers(self, count: int, concurrency: int = 2) -> list[subprocess.Popen[bytes]]:
        """``count`` workers, started at once."""
        procs = [self.start_worker(concurrency, wait=False) for _ in range(count)]
        for proc in procs:
            self.wait_ready(self.logs[self.workers.index(proc)], proc)
        return procs

    def start_worker(
        self,
        concurrency: int = 2,
        *,
        modules: tuple[str, ...] = ("celery_nodes",),
        wait: bool = True,
        celery_command: bool = False,
        pool: str | None = None,
        prefix: Sequence[str] = (),
        **env: str,
    ) -> subprocess.Popen[bytes]:
        """A ``qm worker`` process (its own process group, so a kill takes its children);
        with ``celery_command``, ``celery -A qm_dispatch_celery.app worker`` instead.
        ``prefix`` comes before the command (``ip netns exec HOST``: another host)."""
        log = self.directory / f"worker{len(self.workers)}.log"
        if celery_command:
            app = "qm_dispatch_celery.app"
            args = [str(QM.with_name("celery")), "-A", app, "worker", "-c", str(concurrency)]
            args += ["-l", "INFO"]  # (the queue is the configured one by default)
            env = {"QM_CONFIG": str(self.config), "QM_WORKER_MODULES": ",".join(modules), **env}
        else:
            args = [str(QM), "worker", "--config", str(self.config), "-c", str(concurrency)]
            for module in modules:
                args += ["-p", module]
            if pool is not None:
                args += ["--pool", pool]
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [*prefix, *args],
                cwd=self.directory,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env(**env),
                start_new_session=True,
            )
        self.workers.append(proc)
        self.logs.append(log)
        if wait:
            self.wait_ready(log, proc)
        return proc

    def wait_ready(self, log: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while "ready." not in log.read_text():
            assert proc.poll() is None, f"worker exited {proc.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"worker not ready:\n{log.read_text()}"
            time.sleep(0.05)

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its children at once (a machine that dies)."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    def script(self, code: str, *args: str, prefix: Sequence[str] = ()) -> subprocess.Popen[str]:
        """A client process running ``code`` (``sys.argv[1:]`` are ``args``), after
        ``prefix`` as `start_worker`'s."""
        return subprocess.Popen(
            [*prefix, sys.executable, "-c", code, *args],
            cwd=self.directory,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
        )

    def qm(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A ``qm`` command on this fleet's configuration."""
        return subprocess.run(
            [str(QM), *args, "--config", str(self.config)],
            cwd=self.directory,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=120,
        )

    def wait_status(self, store: Any, flow_id: Any, status: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            record = call(store, "get_flow", flow_id)
            if record is not None and record.status.value == status:
                return record
            assert time.monotonic() < deadline, f"flow is {record and record.status.value}"
            time.sleep(0.05)

    def runner(self, graph: GraphSpec, **kwargs: Any) -> FlowRunner:
        return FlowRunner.from_config(graph, str(self.config), **kwargs)

    def lines(self) -> list[list[str]]:
        text = self.side.read_text() if self.side.exists() else ""
        return [line.split(" ") for line in text.splitlines()]

    def runs(self, event: str = "ran") -> Counter[str]:
        """How many times each node name noted ``event``."""
        return Counter(parts[3] for parts in self.lines() if parts[0] == event)

    def pids(self, event: str = "ran") -> set[int]:
        return {int(parts[1]) for parts in self.lines() if parts[0] == event}

    def worker_of(self, pid: int) -> int:
        """Which of `workers` (its index) the process ``pid`` belongs to: the worker
        itself or one of its pool's children (they must still be alive)."""
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        for i, proc in enumerate(self.workers):
            if proc.pid in (pid, ppid):
                return i
        raise LookupError(f"process {pid} is no worker's (parent {ppid})")

    def wait_for_line(self, event: str, node: str, timeout: float = 60) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            for parts in self.lines():
                if parts[0] == event and parts[3] == node:
                    return parts
            assert time.monotonic() < deadline, f"no {event!r} of {node} in {self.lines()}"
            time.sleep(0.02)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)
