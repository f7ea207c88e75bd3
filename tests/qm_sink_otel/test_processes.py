"""A flow paused in one process and resumed in another (real subprocesses on one SQLite
file) continues the same trace: the resuming process puts its spans under the flow span
the first one exported, knowing its ids from the flow id alone."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from qm_sink_otel import flow_span_id

WORKER = Path(__file__).with_name("otel_worker.py")


def worker(command: str, **args: Any) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(WORKER), command, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def names_under(spans: list[dict[str, Any]], parent: int) -> list[str]:
    return [s["name"] for s in sorted(spans, key=lambda s: s["start"]) if s["parent_id"] == parent]


def test_a_flow_resumed_in_another_process_continues_its_trace(tmp_path: Path) -> None:
    db = str(tmp_path / "flows.db")
    first = worker("pause", db=db)
    assert first["status"] == "paused"
    flow_id = UUID(first["flow_id"])
    second = worker("resume", db=db, flow_id=str(flow_id), answer="yes")
    assert (second["status"], second["final_output"]) == ("completed", "Publish(yes)")

    [flow] = [s for s in first["spans"] if s["parent_id"] is None]
    assert (flow["name"], flow["span_id"]) == ("invoke_agent approval", flow_span_id(flow_id))
    assert flow["events"] == ["qm.flow.paused"]
    assert names_under(first["spans"], flow["span_id"]) == ["node Start", "node Approve"]

    # The second process's spans: one segment under the first process's flow span.
    [segment] = [s for s in second["spans"] if s["parent_id"] == flow_span_id(flow_id)]
    assert segment["name"] == "invoke_agent approval"
    assert segment["events"] == ["qm.flow.resumed"]
    assert segment["attributes"]["qm.flow.status"] == "completed"
    assert names_under(second["spans"], segment["span_id"]) == [
        "node Approve",
        "node Publish",
        "node End",
    ]
    assert len(second["spans"]) == 4
    every = first["spans"] + second["spans"]
    assert {s["trace_id"] for s in every} == {flow_id.int}


def test_a_child_flow_resumed_in_another_process_stays_in_its_root_trace(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "flows.db")
    first = worker("pause", db=db, graph="nested")
    assert first["status"] == "paused"
    root_id = UUID(first["flow_id"])
    second = worker("resume", db=db, graph="nested", flow_id=str(root_id), answer="yes")
    assert (second["status"], second["final_output"]) == ("completed", "Publish(yes)")

    [child] = [s for s in first["spans"] if s["name"] == "invoke_agent review"]
    [review] = [s for s in first["spans"] if s["name"] == "node Review"]
    assert child["parent_id"] == review["span_id"]
    child_id = UUID(child["attributes"]["qm.flow.id"])
    assert child["span_id"] == flow_span_id(child_id)

    # Resumed: the parent's segment under the parent's flow span, the child's segment
    # under the child's flow span, all in the root flow's trace.
    segments = {s["name"]: s for s in second["spans"] if s["events"] == ["qm.flow.resumed"]}
    assert sorted(segments) == ["invoke_agent outer", "invoke_agent review"]
    assert segments["invoke_agent outer"]["parent_id"] == flow_span_id(root_id)
    assert segments["invoke_agent review"]["parent_id"] == flow_span_id(child_id)
    assert names_under(second["spans"], segments["invoke_agent review"]["span_id"]) == [
        "node Approve",
        "node Publish",
        "node End",
    ]
    every = first["spans"] + second["spans"]
    assert {s["trace_id"] for s in every} == {root_id.int}


def test_a_flow_recovered_after_sigkill_continues_its_trace(tmp_path: Path) -> None:
    db = str(tmp_path / "flows.db")
    ready = tmp_path / "ready"
    flow_id = uuid4()
    args = {"db": db, "graph": "hang", "flow_id": str(flow_id), "ready": str(ready)}
    proc = subprocess.Popen([sys.executable, str(WORKER), "hang", json.dumps(args)])
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, "the worker died before reaching Hang"
            assert time.monotonic() < deadline, "the worker never reached Hang"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    recovered = worker("recover", db=db, graph="hang", flow_id=str(flow_id))
    assert (recovered["status"], recovered["final_output"]) == ("completed", "After(Hang)")
    # The killed process exported nothing; the recovering one continues the trace
    # under the flow span's id, known from the flow id alone.
    [segment] = [s for s in recovered["spans"] if s["parent_id"] == flow_span_id(flow_id)]
    assert segment["name"] == "invoke_agent hang"
    assert segment["events"] == ["qm.flow.resumed"]
    assert names_under(recovered["spans"], segment["span_id"]) == [
        "node Hang",
        "node After",
        "node End",
    ]
    assert {s["trace_id"] for s in recovered["spans"]} == {flow_id.int}
