"""``qm serve`` keeps the clock: a flow sleeping on a Sleep1 parks in the store (no
task of the server holds it) and the server's clock loop wakes it when due."""

from __future__ import annotations

import time
from pathlib import Path
from uuid import UUID

from qm_server_support import LiveServer, graphs_folder

from qm_server import ServerSettings
from qm_store_sqlite import SQLiteStore
from quartermaster_engine.testing import call

NAP_YAML = """\
name: Nap
nodes:
  - {name: Start, type: Start1}
  - {name: nap, type: Sleep1, metadata: {duration: 1.5s}}
  - {name: End, type: End1}
edges:
  - {from: Start, to: nap}
  - {from: nap, to: End}
"""


def test_the_server_parks_a_sleeping_flow_and_its_clock_wakes_it(tmp_path: Path) -> None:
    graphs = graphs_folder(tmp_path / "graphs")
    (graphs / "nap.yaml").write_text(NAP_YAML)
    config = {
        "store": {"name": "sqlite", "path": str(tmp_path / "flows.db")},
        "dispatcher": {"name": "async"},
    }
    server = LiveServer(ServerSettings(graphs_dir=graphs, config=config)).start()
    try:
        with server.client() as client:
            began = time.time()
            parked = client.post("/api/flows", json={"graph": "nap", "input": "hi", "wait": True})
            assert parked.status_code == 200, parked.text
            body = parked.json()
            assert body["status"] == "paused"  # answered at once: the flow parked
            assert time.time() - began < 1.0
            store = SQLiteStore(tmp_path / "flows.db")
            record = call(store, "get_flow", UUID(body["flow_id"]))
            call(store, "close")
            assert (record.status.value, record.lease_owner) == ("paused", None)  # no holder
            deadline = time.time() + 10
            while True:
                flow = client.get(f"/api/flows/{body['flow_id']}").json()
                if flow["status"] != "paused" or time.time() > deadline:
                    break
                time.sleep(0.05)
            ended = time.time()
        assert flow["status"] == "completed"
        assert 1.5 <= ended - began < 3.0
        assert [run["node_name"] for run in flow["runs"]][-2:] == ["nap", "End"]
    finally:
        server.stop()
