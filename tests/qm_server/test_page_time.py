"""Time and usage on the page, in a real headless Chromium: a waiting flow's deadline, a
sleeping flow's wake time, the TimerSet / TimerFired / DeadlinePassed / ScheduleFired
events of a flow, and a flow's usage (node runs, tokens, cost). The server keeps the
clock (real time, short timers); exact texts are computed from the stored events."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conftest import sqlite_config
from qm_server_support import LiveServer, graphs_folder, sse_events
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from qm_server import ServerSettings
from qm_store_sqlite import SQLiteStore
from quartermaster_engine import Engine, FlowStatus, NodeResult, SimpleNodeRegistry
from quartermaster_engine.budgets import BudgetsConfig
from quartermaster_engine.testing import call, chain_graph
from quartermaster_engine.testing.graphs import build_graph
from quartermaster_graph.files import load_graph

ASK_YAML = """\
name: Ask
nodes:
  - {name: Start, type: Start1}
  - name: Ask
    type: User1
    metadata: {timeout: TIMEOUT, on_timeout: no reply, text_snippets: [ok?]}
  - {name: End, type: End1}
edges:
  - {from: Start, to: Ask}
  - {from: Ask, to: End}
"""

NAP_YAML = """\
name: Nap
nodes:
  - {name: Start, type: Start1}
  - {name: nap, type: Sleep1, metadata: {duration: 4s}}
  - {name: End, type: End1}
edges:
  - {from: Start, to: nap}
  - {from: nap, to: End}
"""

PASS_YAML = """\
name: Pass
nodes:
  - {name: Start, type: Start1}
  - {name: End, type: End1}
edges:
  - {from: Start, to: End}
"""


def utc(ts: float) -> str:
    """As the page writes a time (dom.js ``utc``)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _texts(driver: WebDriver, selector: str) -> list[str]:
    texts: list[str] = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent)", selector
    )
    return texts


def _events(server: LiveServer, flow_id: str, kind: str) -> list[dict[str, Any]]:
    with server.client() as client:
        return [
            e.data for e in sse_events(client, f"/api/flows/{flow_id}/events") if e.event == kind
        ]


def test_the_page_shows_deadlines_wake_times_and_their_events(
    tmp_path: Path, browser: WebDriver
) -> None:
    graphs = graphs_folder(tmp_path / "graphs")
    (graphs / "ask-long.yaml").write_text(ASK_YAML.replace("TIMEOUT", "1h"))
    (graphs / "ask-short.yaml").write_text(ASK_YAML.replace("TIMEOUT", "1s"))
    (graphs / "nap.yaml").write_text(NAP_YAML)
    server = LiveServer(ServerSettings(graphs_dir=graphs, config=sqlite_config(tmp_path))).start()
    wait = WebDriverWait(browser, 30)
    try:
        with server.client() as client:
            waiting = client.post("/api/flows", json={"graph": "ask-long", "wait": True}).json()
            short = client.post("/api/flows", json={"graph": "ask-short", "wait": True}).json()
            napping = client.post("/api/flows", json={"graph": "nap", "wait": True}).json()
            (deadline,) = client.get(f"/api/flows/{waiting['flow_id']}").json()["timers"]
            (wake,) = client.get(f"/api/flows/{napping['flow_id']}").json()["timers"]
        assert [waiting["status"], short["status"], napping["status"]] == ["paused"] * 3
        assert (deadline["node"], deadline["kind"], wake["node"], wake["kind"]) == (
            "Ask", "deadline", "nap", "sleep",
        )  # fmt: skip

        # A sleeping flow: its wake time, its TimerSet, then (woken by the server's
        # clock) its TimerFired.
        browser.get(f"{server.url}/#/flows/{napping['flow_id']}")
        wait.until(lambda d: _texts(d, "#flow-timers li") != [])
        assert _texts(browser, "#flow-timers li") == [f"nap sleeps until {utc(wake['wakes_at'])}"]
        wait.until(lambda d: _texts(d, "#flow-timeline li") != [])
        assert (
            _texts(browser, "#flow-timeline li")[0] == f"nap sleeps until {utc(wake['wakes_at'])}"
        )
        wait.until(ec.text_to_be_present_in_element((By.ID, "flow-status"), "completed"))
        (fired,) = _events(server, napping["flow_id"], "TimerFired")
        wait.until(lambda d: len(_texts(d, "#flow-timeline li")) == 2)
        assert _texts(browser, "#flow-timeline li") == [
            f"nap sleeps until {utc(wake['wakes_at'])}",
            f"nap woke at {utc(fired['ts'])} ({fired['late']:.1f} s late)",
        ]
        wait.until(lambda d: _texts(d, "#flow-timers li") == [])

        # A waiting flow: its deadline, beside the form that answers it.
        browser.get(f"{server.url}/#/flows/{waiting['flow_id']}")
        wait.until(lambda d: _texts(d, "#flow-timers li") != [])
        assert _texts(browser, "#flow-timers li") == [
            f"Ask times out at {utc(deadline['wakes_at'])}"
        ]
        assert browser.find_element(By.ID, "answer-form").is_displayed()
        assert _texts(browser, "#flow-timeline li") == []

        # A deadline that passed: answered with on_timeout by the server's clock.
        browser.get(f"{server.url}/#/flows/{short['flow_id']}")
        wait.until(ec.text_to_be_present_in_element((By.ID, "flow-status"), "completed"))
        (passed,) = _events(server, short["flow_id"], "DeadlinePassed")
        wait.until(lambda d: _texts(d, "#flow-timeline li") != [])
        assert _texts(browser, "#flow-timeline li") == [
            f'Ask\'s deadline {utc(passed["deadline"])} passed: answered "no reply"'
        ]
        assert _texts(browser, "#flow-timers li") == []
    finally:
        server.stop()


BUDGETS = {"max_tokens": 10_000, "currency": "EUR", "prices": {"m*": {"input": 1, "output": 4}}}


def spend(ctx: object) -> NodeResult:
    usage = {"input_tokens": 1000, "output_tokens": 250}
    return NodeResult(output_text="ok", data={"usage": usage, "model": "m1"})


def test_the_page_shows_a_flows_usage_and_the_schedule_that_started_it(
    tmp_path: Path, browser: WebDriver
) -> None:
    (tmp_path / "pass.yaml").write_text(PASS_YAML)
    db = tmp_path / "flows.db"

    async def prepare() -> str:
        registry = SimpleNodeRegistry({"echo": spend})
        async with Engine(store=SQLiteStore(db), registry=registry) as engine:
            spent = await engine.run(chain_graph(4), "go")
            graph = load_graph(tmp_path / "pass.yaml")
            await engine.schedules.add("pulse", graph, "* * * * * *", input="beat")
            return str(spent.flow_id)

    spent = asyncio.run(prepare())
    config = {**sqlite_config(tmp_path), "budgets": BUDGETS}
    graphs = graphs_folder(tmp_path / "graphs")
    server = LiveServer(ServerSettings(graphs_dir=graphs, config=config)).start()
    wait = WebDriverWait(browser, 30)
    try:
        browser.get(f"{server.url}/#/flows/{spent}")
        wait.until(lambda d: d.find_element(By.ID, "flow-usage").text != "")
        # Start, n0, n1, End; n0 and n1 spent 1250 tokens each at 1 and 4 EUR per million.
        assert browser.find_element(By.ID, "flow-usage").text == (
            "Usage: 4 node runs, 2500 tokens (2000 in, 500 out), cost 0.004 EUR"
        )
        store = SQLiteStore(db)
        deadline = time.time() + 10
        while True:
            completed = call(store, "list_flows", status=FlowStatus.COMPLETED)
            ticked = [str(r.flow_id) for r in completed if str(r.flow_id) != spent]
            if ticked:
                break
            assert time.time() < deadline, "the server's clock started no flow"
            time.sleep(0.05)
        call(store, "close")
        fid = ticked[0]
        (fired,) = _events(server, fid, "ScheduleFired")
        browser.get(f"{server.url}/#/flows/{fid}")
        wait.until(lambda d: _texts(d, "#flow-timeline li") != [])
        assert _texts(browser, "#flow-timeline li") == [
            f"started by schedule pulse for its tick {utc(fired['tick'])}"
        ]
        assert browser.find_element(By.ID, "flow-usage").text == (
            "Usage: 2 node runs, 0 tokens (0 in, 0 out), cost 0 EUR"
        )
    finally:
        server.stop()


def test_the_api_and_page_show_a_flows_keys_usage_across_flows(
    tmp_path: Path, browser: WebDriver
) -> None:
    """Two flows of 2 nodes declaring ``tenant:acme`` (1250 tokens a run): the flow
    JSON's ``key_usage`` and the page give the key's totals of both flows, with the
    budget of the table it falls under, beside the flow's own usage."""
    db = tmp_path / "flows.db"
    tenant = {"type": "echo", "metadata": {"limit_keys": ["tenant:acme"]}}
    graph = build_graph(
        {"Start": "Start1", "a": tenant, "b": tenant, "End": "End1"},
        [("Start", "a"), ("a", "b"), ("b", "End")],
    )
    budgets = {**BUDGETS, "tenant:*": {"max_tokens": 20_000, "on_exceeded": "pause"}}

    async def prepare() -> str:
        registry = SimpleNodeRegistry({"echo": spend})
        config = BudgetsConfig.model_validate(budgets)
        async with Engine(store=SQLiteStore(db), registry=registry, budgets=config) as engine:
            await engine.run(graph, "one")
            return str((await engine.run(graph, "two")).flow_id)

    flow_id = asyncio.run(prepare())
    config = {**sqlite_config(tmp_path), "budgets": budgets}
    server = LiveServer(ServerSettings(graphs_dir=graphs_folder(tmp_path / "g"), config=config))
    server.start()
    wait = WebDriverWait(browser, 30)
    try:
        with server.client() as client:
            view = client.get(f"/api/flows/{flow_id}").json()
        assert view["key_usage"] == {
            "tenant:acme": {
                "node_runs": 4,
                "tokens": 5000,
                "cost": 0.008,
                "currency": "EUR",
                "table": "tenant:*",
                "max_node_runs": None,
                "max_tokens": 20_000,
                "max_cost": None,
                "on_exceeded": "pause",
            }
        }
        browser.get(f"{server.url}/#/flows/{flow_id}")
        wait.until(lambda d: _texts(d, "#flow-key-usage li") != [])
        assert browser.find_element(By.ID, "flow-usage").text == (
            "Usage: 4 node runs, 2500 tokens (2000 in, 500 out), cost 0.004 EUR"
        )
        assert _texts(browser, "#flow-key-usage li") == [
            "Key tenant:acme (all flows): 4 node runs, 5000 tokens, cost 0.008 EUR; "
            "budget 20000 tokens (pause)"
        ]
    finally:
        server.stop()
