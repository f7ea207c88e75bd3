"""Map progress on the page, in a real headless Chromium: one line per map, from its
latest MapProgress event ("done, running, failed of N"), live while the flow runs."""

from __future__ import annotations

from pathlib import Path

from conftest import sqlite_config
from qm_server_support import LiveServer, graphs_folder, sse_events
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from qm_server import ServerSettings
from quartermaster_graph import Graph, GraphNode
from quartermaster_graph.files import save_graph


def _texts(driver: WebDriver, selector: str) -> list[str]:
    texts: list[str] = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent)", selector
    )
    return texts


def _progress(
    server: LiveServer, flow_id: str, until: str | None = None
) -> list[tuple[int, int, int, int]]:
    with server.client() as client:
        events = sse_events(client, f"/api/flows/{flow_id}/events", until=until)
        return [
            (e.data["done"], e.data["running"], e.data["failed"], e.data["total"])
            for e in events
            if e.event == "MapProgress"
        ]


def test_the_page_shows_each_map_s_progress(tmp_path: Path, browser: WebDriver) -> None:
    graphs = graphs_folder(tmp_path / "graphs")
    num = GraphNode(type="Var1", name="Num", metadata={"name": "n", "expression": "int(input)"})
    nums = Graph("Nums").map("Numbers", items="input.split()", node=num, max_concurrency=2,
                             on_item_error="skip")  # fmt: skip
    save_graph(nums.end().build(), graphs / "nums.yaml")
    nap = GraphNode(type="Sleep1", name="Nap", metadata={"duration": "1h"})
    naps = Graph("Naps").map("Naps", items="input.split()", node=nap, max_concurrency=2)
    save_graph(naps.end().build(), graphs / "naps.yaml")
    server = LiveServer(ServerSettings(graphs_dir=graphs, config=sqlite_config(tmp_path))).start()
    wait = WebDriverWait(browser, 30)
    try:
        with server.client() as client:
            ended = client.post(
                "/api/flows", json={"graph": "nums", "input": "1 x 3", "wait": True}
            ).json()
            napping = client.post(
                "/api/flows", json={"graph": "naps", "input": "a b c", "wait": True}
            ).json()
        assert (ended["status"], napping["status"]) == ("completed", "paused")
        # Items "1" and "x" start in the map's two lanes, each in a task of its own;
        # SQLite commits on the loop's thread when its lock is free (no await), so
        # "1"'s task goes on with "3" (queued by "1"'s commit) before "x"'s task
        # runs: "3" ends second, "x" fails last.
        assert _progress(server, ended["flow_id"]) == [
            (0, 2, 0, 3), (1, 2, 0, 3), (2, 1, 0, 3), (3, 0, 1, 3),
        ]  # fmt: skip
        assert _progress(server, napping["flow_id"], until="MapProgress") == [(0, 2, 0, 3)]

        # An ended map: its last MapProgress (item "x" failed, skipped).
        browser.get(f"{server.url}/#/flows/{ended['flow_id']}")
        wait.until(ec.text_to_be_present_in_element((By.ID, "flow-status"), "completed"))
        wait.until(lambda d: _texts(d, "#flow-maps li") != [])
        assert _texts(browser, "#flow-maps li") == ["Numbers: 3 done, 0 running, 1 failed of 3"]

        # A map whose first two items sleep (the third waits for a lane).
        browser.get(f"{server.url}/#/flows/{napping['flow_id']}")
        wait.until(lambda d: _texts(d, "#flow-maps li") != [])
        assert _texts(browser, "#flow-maps li") == ["Naps: 0 done, 2 running, 0 failed of 3"]
    finally:
        server.stop()
