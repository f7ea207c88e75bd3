"""`qm run` and `qm resume`, two processes on one SQLite file, both exporting OTLP/HTTP
to one receiver: the receiver decodes one trace, the flow's, with the second process's
spans under the flow span the first one sent."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
from otlp_receiver import OtlpReceiver

from qm_sink_otel import flow_span_id

ROOT = Path(__file__).resolve().parents[2]
QM = Path(sys.executable).with_name("qm")


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver().start()
    yield server
    server.stop()


def qm(*args: str, cwd: Path) -> dict[str, object]:
    proc = subprocess.run(
        [str(QM), *args, "--config", "qm.toml", "--json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert proc.returncode in (0, 3), proc.stderr  # 3: paused
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_qm_run_then_qm_resume_in_another_process_make_one_trace(
    tmp_path: Path, receiver: OtlpReceiver
) -> None:
    (tmp_path / "qm.toml").write_text(
        '[store]\nname = "sqlite"\npath = "flows.db"\n\n'
        f'[[sinks]]\nname = "otel"\nendpoint = "{receiver.endpoint}"\n'
    )
    graph = str(ROOT / "examples" / "approval-loop.yaml")
    paused = qm("run", graph, "--input", "Ship v2", cwd=tmp_path)
    assert paused["status"] == "paused"
    flow_id = UUID(str(paused["flow_id"]))
    first = receiver.spans()
    done = qm("resume", str(flow_id), "--input", "approve", cwd=tmp_path)
    assert done["status"] == "completed"
    second = receiver.spans()[len(first) :]

    every = first + second
    assert {s.trace_id for s in every} == {flow_id.bytes}
    flow_span = flow_span_id(flow_id).to_bytes(8, "big")
    [flow] = [s for s in first if s.span_id == flow_span]
    assert flow.name == "invoke_agent Approval Loop"
    assert sorted(s.name for s in first) == [
        "invoke_agent Approval Loop",
        "node Review",
        "node Save draft",
        "node Start",
    ]
    [segment] = [s for s in second if s.parent_span_id == flow_span]
    assert segment.name == "invoke_agent Approval Loop"
    under = [s.name for s in second if s.parent_span_id == segment.span_id]
    # Revise, the branch not taken, is a dead node.
    assert sorted(under) == [
        "node Approved?",
        "node End",
        "node Publish",
        "node Review",
        "node Revise",
    ]
    assert len(second) == 6
