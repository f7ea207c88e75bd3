"""Starting race workers and reading what they did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID

from race_worker import make_store

from quartermaster_engine.testing import call

WORKER = Path(__file__).with_name("race_worker.py")


def start(command: str, **args: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(WORKER.parent)}
    return subprocess.Popen(
        [sys.executable, str(WORKER), command, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 180.0) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"worker exited {proc.returncode}:\n{err}"
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run(command: str, **args: Any) -> dict[str, Any]:
    return finish(start(command, **args))


def go_when_ready(go: Path, count: int, timeout: float = 60.0) -> None:
    """Let ``count`` waiting workers start at the same instant."""
    deadline = time.monotonic() + timeout
    while len(list(go.parent.glob("ready-*"))) < count:
        assert time.monotonic() < deadline, "the workers did not get ready"
        time.sleep(0.01)
    go.touch()


def wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.01)


def side_runs(side: Path) -> Counter[tuple[str, str]]:
    """How many times each (flow id, node name) ran."""
    lines = side.read_text().splitlines() if side.exists() else []
    return Counter(tuple(line.split(" ", 1)) for line in lines)  # type: ignore[misc]


def stored(spec: dict[str, Any], flow_id: str) -> Any:
    """The flow as the store holds it (a `FlowSnapshot`) and its event log."""
    store = make_store(spec)
    try:
        snap = call(store, "load_flow", UUID(flow_id))
        events = call(store, "read_events", UUID(flow_id))
        return snap, events
    finally:
        call(store, "close")


def finished_per_node(snap: Any) -> Counter[UUID]:
    return Counter(r.node_id for r in snap.records if r.status.value == "finished")
