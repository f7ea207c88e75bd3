"""The server's flow JSON gives the flow's usage (node runs, tokens, cost priced by
the server's ``[budgets]``), read from the records of a flow another engine ran."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import sqlite_config
from qm_server_support import LiveServer, graphs_folder

from qm_server import ServerSettings
from qm_store_sqlite import SQLiteStore
from quartermaster_engine import Engine, NodeResult, SimpleNodeRegistry
from quartermaster_engine.testing import chain_graph

BUDGETS = {"max_tokens": 10_000, "currency": "EUR", "prices": {"m*": {"input": 1, "output": 4}}}


def spend(ctx: object) -> NodeResult:
    usage = {"input_tokens": 1000, "output_tokens": 250}
    return NodeResult(output_text="ok", data={"usage": usage, "model": "m1"})


def test_the_flow_json_gives_its_usage(tmp_path: Path) -> None:
    config = {**sqlite_config(tmp_path), "budgets": BUDGETS}

    async def run() -> str:
        store = SQLiteStore(str(tmp_path / "flows.db"))
        async with Engine(store=store, registry=SimpleNodeRegistry({"echo": spend})) as engine:
            return str((await engine.run(chain_graph(4), "go")).flow_id)

    flow_id = asyncio.run(run())
    live = LiveServer(ServerSettings(graphs_dir=graphs_folder(tmp_path / "g"), config=config))
    live.start()
    try:
        with live.client() as client:
            flow = client.get(f"/api/flows/{flow_id}").json()
    finally:
        live.stop()
    # Start, n0, n1, End; n0 and n1 spent 1250 tokens each at 1 and 4 EUR per million.
    assert flow["usage"] == {
        "node_runs": 4,
        "input_tokens": 2000,
        "output_tokens": 500,
        "tokens": 2500,
        "cost": 0.004,
        "currency": "EUR",
    }
