"""``qm serve`` keeps the clock: a flow sleeping on a Sleep1 parks in the store (no
task of the server holds it) and the server's clock loop wakes it when due."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from uuid import UUID

from qm_server_support import LiveServer, graphs_folder

from qm_server import ServerSettings
from qm_store_sqlite import SQLiteStore
from quartermaster_engine import Engine, FlowStatus
from quartermaster_engine.testing import call
from quartermaster_graph.files import load_graph

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


PASS_YAML = """\
name: Pass
nodes:
  - {name: Start, type: Start1}
  - {name: End, type: End1}
edges:
  - {from: Start, to: End}
"""


def test_the_servers_clock_fires_a_schedule_once_per_tick(tmp_path: Path) -> None:
    (tmp_path / "pass.yaml").write_text(PASS_YAML)
    db = tmp_path / "flows.db"

    async def add() -> None:
        async with Engine(store=SQLiteStore(db)) as engine:
            graph = load_graph(tmp_path / "pass.yaml")
            await engine.schedules.add("pulse", graph, "* * * * * *", input="beat")

    asyncio.run(add())
    config = {"store": {"name": "sqlite", "path": str(db)}, "dispatcher": {"name": "async"}}
    graphs = graphs_folder(tmp_path / "graphs")
    server = LiveServer(ServerSettings(graphs_dir=graphs, config=config)).start()
    store = SQLiteStore(db)
    try:
        deadline = time.time() + 10
        while len(call(store, "list_flows", status=FlowStatus.COMPLETED)) < 3:
            assert time.time() < deadline, "the server's clock started fewer than 3 flows"
            time.sleep(0.05)
    finally:
        server.stop()
    flows = call(store, "list_flows")
    ticks = []
    for record in flows:
        fired = [e for e in call(store, "read_events", record.flow_id) if e.type == "ScheduleFired"]
        assert [e.schedule for e in fired] == ["pulse"]
        ticks.append(fired[0].tick)
    call(store, "close")
    assert len(ticks) == len(set(ticks)) >= 3  # one flow per tick
    assert sorted(ticks) == [min(ticks) + i for i in range(len(ticks))]  # one each second
