"""qm-server over the celery dispatcher: the server's one Engine stores the flow and
hands it to the workers; every node runs in a worker process, none in the server's."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from celery_support import Fleet

from qm_server import ServerSettings

sys.path.insert(0, str(Path(__file__).parents[1] / "qm_server"))

from qm_server_support import LiveServer, sse_events

CHAIN_YAML = """\
name: Chain
nodes:
  - {name: Start, type: Start1}
  - {name: A, type: work}
  - {name: B, type: work}
  - {name: End, type: End1}
edges:
  - {from: Start, to: A}
  - {from: A, to: B}
  - {from: B, to: End}
"""


def test_a_flow_started_over_http_runs_its_nodes_in_worker_processes(
    fleet: Fleet, tmp_path: Path
) -> None:
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "chain.yaml").write_text(CHAIN_YAML)
    fleet.start_workers(1, concurrency=2)
    # The server lacks the "work" executor: only a worker can run A and B.
    server = LiveServer(ServerSettings(graphs_dir=graphs, config=str(fleet.config))).start()
    try:
        with server.client() as client:
            waited = client.post("/api/flows", json={"graph": "chain", "input": "go", "wait": True})
            assert waited.status_code == 200, waited.text
            assert (waited.json()["status"], waited.json()["output"]) == (
                "completed",
                "B(A(go))",
            )
            started = client.post("/api/flows", json={"graph": "chain", "input": "again"})
            assert started.status_code == 202, started.text
            flow_id = started.json()["flow_id"]
            events = sse_events(client, f"/api/flows/{flow_id}/events")
            flow = client.get(f"/api/flows/{flow_id}").json()
    finally:
        server.stop()
    assert [e.event for e in events] == [
        "FlowStarted",
        *["NodeStarted", "NodeFinished"] * 4,
        "FlowFinished",
    ]
    assert events[-1].data["final_output"] == "B(A(again))"
    assert flow["status"] == "completed"
    ran = [line for line in fleet.lines() if line[0] == "ran"]
    assert sorted((line[2], line[3]) for line in ran) == sorted(
        [
            (waited.json()["flow_id"], "A"),
            (waited.json()["flow_id"], "B"),
            (flow_id, "A"),
            (flow_id, "B"),
        ]
    )
    pids = {int(line[1]) for line in ran}
    assert os.getpid() not in pids
    assert {fleet.worker_of(pid) for pid in pids} == {0}
