"""``qm serve`` with the celery dispatcher: the server's flows run on the workers and
it follows them through the shared store (real worker, server and redis-server)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
from celery_support import QM, Fleet

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "t" * 32


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_qm_serve_runs_flows_on_the_workers(fleet: Fleet) -> None:
    fleet.start_worker()
    graphs = fleet.directory / "graphs"
    graphs.mkdir()
    shutil.copy(ROOT / "examples" / "ticket-router.yaml", graphs)
    port = _free_port()
    command = [str(QM), "serve", "--config", str(fleet.config), "--graphs", str(graphs)]
    server = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=fleet.directory,
        env=fleet.env(QM_SERVER_TOKEN=TOKEN),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.communicate()[1]
            assert time.monotonic() < deadline, "qm serve did not start"
            time.sleep(0.1)
        done = httpx.post(
            f"{url}/api/flows",
            json={"graph": "ticket-router", "input": "The site is down ASAP", "wait": True},
            headers={"authorization": f"Bearer {TOKEN}"},
            timeout=60,
        ).json()
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert (done["status"], done["output"]) == (
        "completed",
        "Escalated to the on-call team right away: The site is down ASAP",
    )
    worker_log = fleet.logs[0].read_text()
    assert "qm.activation" in worker_log  # the nodes ran on the worker
