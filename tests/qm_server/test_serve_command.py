"""``qm serve`` as users run it: a real process, reached through the plugin command hook."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from qm_server_support import TOKEN, free_port, graphs_folder, sse_events

QM = str(Path(sys.executable).parent / "qm")


def _environ(**extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("QM_")}
    environ.update(extra)
    return environ


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    graphs = graphs_folder(tmp_path / "graphs")
    (tmp_path / "qm.toml").write_text(
        '[store]\nname = "sqlite"\npath = "flows.db"\n\n[dispatcher]\nname = "async"\n'
    )
    port = free_port()
    proc = subprocess.Popen(
        [QM, "serve", "--config", "qm.toml", "--graphs", str(graphs), "--port", str(port)],
        cwd=tmp_path,
        env=_environ(QM_SERVER_TOKEN=TOKEN),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/api/health").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"qm serve did not start: {proc.communicate()[1]}")
        time.sleep(0.1)
    yield url, proc
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()  # the test fails on its own; leave no server behind
            proc.wait()


def test_qm_serve_runs_flows_of_the_graphs_folder_behind_the_token(
    served: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    url, proc = served
    headers = {"authorization": f"Bearer {TOKEN}"}
    refused = httpx.get(f"{url}/api/graphs")
    done = httpx.post(
        f"{url}/api/flows",
        json={"graph": "ticket-router", "input": "The site is down ASAP", "wait": True},
        headers=headers,
        timeout=30,
    ).json()
    proc.terminate()
    _, stderr = proc.communicate(timeout=20)
    assert refused.status_code == 401
    assert (done["status"], done["output"]) == (
        "completed",
        "Escalated to the on-call team right away: The site is down ASAP",
    )
    assert stderr.startswith(f"qm-server on {url}/ (token required)\nstore sqlite path=flows.db\n")
    assert TOKEN not in stderr
    assert (tmp_path / "flows.db").exists()


def test_qm_serve_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    done = subprocess.run(
        [QM, "serve", "--graphs", str(graphs_folder(tmp_path)), "--host", "0.0.0.0"],
        env=_environ(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr == (
        "error: refusing to listen on 0.0.0.0 without a token: set $QM_SERVER_TOKEN or "
        "--token-file (only a loopback address may go without one)\n"
    )


def test_qm_serve_reads_the_token_from_a_file(tmp_path: Path) -> None:
    empty = tmp_path / "token"
    empty.write_text("\n")
    done = subprocess.run(
        [QM, "serve", "--graphs", str(graphs_folder(tmp_path / "g")), "--token-file", str(empty)],
        env=_environ(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (1, f"error: token file {empty} is empty\n")


def test_qm_help_lists_serve() -> None:
    done = subprocess.run(
        [QM, "--help"], env=_environ(), capture_output=True, text=True, timeout=60, check=False
    )
    assert "  serve      Serve the HTTP API (OpenAPI schema at /openapi.json) and the...\n" in (
        done.stdout
    )


def test_stopping_qm_serve_ends_the_streams_of_paused_flows(
    served: tuple[str, subprocess.Popen[str]],
) -> None:
    url, proc = served
    client = httpx.Client(base_url=url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=60)
    flow_id = client.post(
        "/api/flows", json={"graph": "approval-loop", "input": "d", "wait": True}
    ).json()["flow_id"]
    streamed: list[str] = []

    def follow() -> None:
        with contextlib.suppress(httpx.HTTPError):
            streamed.extend(e.event for e in sse_events(client, f"/api/flows/{flow_id}/events"))

    reader = threading.Thread(target=follow)
    reader.start()
    time.sleep(0.5)  # the stream is open and idle: the flow waits for an answer
    proc.send_signal(signal.SIGTERM)
    # uvicorn stops gracefully, then re-raises the signal it caught.
    assert proc.wait(timeout=30) == -signal.SIGTERM
    reader.join(timeout=30)
    client.close()
    assert not reader.is_alive()
    assert streamed[-1:] in ([], ["FlowPaused"])


def test_qm_serve_never_prints_a_password_of_the_config(tmp_path: Path) -> None:
    (tmp_path / "qm.toml").write_text(
        '[store]\nname = "redis"\nurl = "redis://app:hunter2-secret@127.0.0.1:1/0?password=hunter2-too"\n'
    )
    port = free_port()
    graphs = str(graphs_folder(tmp_path / "g"))
    proc = subprocess.Popen(
        [QM, "serve", "--config", "qm.toml", "--graphs", graphs, "--port", str(port)],
        cwd=tmp_path,
        env=_environ(),
        stderr=subprocess.PIPE,
        text=True,
    )
    info: httpx.Response | None = None
    try:
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                info = httpx.get(f"http://127.0.0.1:{port}/api/server")
                break
            except httpx.TransportError:
                time.sleep(0.1)
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=20)
    assert info is not None, f"qm serve did not answer: {stderr}"
    assert "hunter2" not in stderr + info.text
    assert "store redis url=redis://app:***@127.0.0.1:1/0?password=***\n" in stderr
