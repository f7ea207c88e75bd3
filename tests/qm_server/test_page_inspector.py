"""The page as an inspector, in a real headless Chromium: the graph fits the width, a node's
panel shows what its run did (input messages, output, memory changes, LLM calls, errors),
the waterfall grows while the flow runs, and the flows list filters and searches.

The LLM nodes are the real Instruction1 executor of qm-nodes-llm, configured in the
server's engine configuration to call a loopback OpenAI-compatible server with scripted
answers. ``QM_SERVER_SCREENSHOTS=DIR`` keeps the screenshots (those in qm-server/docs/
were made so)."""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from qm_server_support import LiveServer, graphs_folder
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from qm_server import ServerSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "qm_nodes_llm"))

from fake_openai import FakeOpenAI, completion, error

#: Nine nodes: a memory write, an LLM classification, three parallel branches (one an
#: LLM call, one a slow lookup), a merge that waits for all, a memory write, the end.
INSPECTOR_YAML = """\
name: Ticket Inspector
nodes:
  - {name: Start, type: Start1}
  - name: Remember ticket
    type: WriteMemory1
    metadata:
      memory_name: ticket
      variables: [{name: ticket_text, expression: input}]
  - name: Classify
    type: Instruction1
    metadata:
      llm_model: gpt-4o-mini
      llm_stream: false
      llm_system_instruction: Classify the ticket as billing or outage.
  - name: Draft reply
    type: Instruction1
    metadata: {llm_model: gpt-4o, llm_stream: false, llm_system_instruction: Draft a reply.}
  - {name: Look up account, type: test.Sleeper, metadata: {seconds: LOOKUP}}
  - {name: Check policy, type: Static1, metadata: {static_text: Refunds within 30 days.}}
  - {name: Collect, type: StaticMerge1, metadata: {static_text: All checks done.}}
  - name: Remember reply
    type: WriteMemory1
    metadata:
      memory_name: reply
      variables: [{name: status, expression: '"answered"'}]
  - {name: End, type: End1}
edges:
  - {from: Start, to: Remember ticket}
  - {from: Remember ticket, to: Classify}
  - {from: Classify, to: Draft reply}
  - {from: Classify, to: Look up account}
  - {from: Classify, to: Check policy}
  - {from: Draft reply, to: Collect}
  - {from: Look up account, to: Collect}
  - {from: Check policy, to: Collect}
  - {from: Collect, to: Remember reply}
  - {from: Remember reply, to: End}
"""


def wide_graph_yaml() -> str:
    """Fifty nodes: a start fanning out to 16 two-node branches, a merge, 15 steps, the end."""
    nodes = ["  - {name: Start, type: Start1}"]
    edges = []
    for i in range(1, 17):
        nodes.append(f"  - {{name: Check {i}, type: Static1, metadata: {{static_text: c{i}}}}}")
        nodes.append(f"  - {{name: Review {i}, type: Static1, metadata: {{static_text: r{i}}}}}")
        edges += [f"  - {{from: Start, to: Check {i}}}", f"  - {{from: Check {i}, to: Review {i}}}"]
        edges.append(f"  - {{from: Review {i}, to: Merge}}")
    nodes.append("  - {name: Merge, type: StaticMerge1, metadata: {static_text: merged}}")
    previous = "Merge"
    for i in range(1, 16):
        nodes.append(f"  - {{name: Step {i}, type: Static1, metadata: {{static_text: s{i}}}}}")
        edges.append(f"  - {{from: {previous}, to: Step {i}}}")
        previous = f"Step {i}"
    nodes.append("  - {name: End, type: End1}")
    edges.append(f"  - {{from: {previous}, to: End}}")
    assert len(nodes) == 50
    return "name: Fifty Nodes\nnodes:\n" + "\n".join(nodes) + "\nedges:\n" + "\n".join(edges) + "\n"


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


def inspector_server(tmp_path: Path, llm: FakeOpenAI, *, lookup: float = 0.3) -> LiveServer:
    graphs = graphs_folder(tmp_path / "graphs")
    (graphs / "inspector.yaml").write_text(INSPECTOR_YAML.replace("LOOKUP", str(lookup)))
    (graphs / "fifty.yaml").write_text(wide_graph_yaml())
    retried = INSPECTOR_YAML.replace("LOOKUP", "0").replace(
        "    type: Instruction1\n    metadata:\n      llm_model: gpt-4o-mini",
        "    type: Instruction1\n    error_handling: Retry\n    max_retries: 1\n"
        "    retry_delay: 0\n    metadata:\n      llm_model: gpt-4o-mini",
    )
    assert "error_handling" in retried
    (graphs / "inspector-retry.yaml").write_text(retried)
    openai = {"base_url": llm.base_url, "api_key": "sk-test", "max_retries": 0}
    config: dict[str, Any] = {
        "store": {"name": "sqlite", "path": str(tmp_path / "flows.db")},
        "dispatcher": {"name": "async"},
        "nodes": {"Instruction1": {"provider": "openai", "providers": {"openai": openai}}},
    }
    return LiveServer(ServerSettings(graphs_dir=graphs, config=config)).start()


@pytest.fixture
def live(tmp_path: Path, openai_server: FakeOpenAI) -> Iterator[LiveServer]:
    server = inspector_server(tmp_path, openai_server)
    yield server
    server.stop()


def screenshot(
    driver: WebDriver, name: str, tmp_path: Path, element: WebElement | None = None
) -> None:
    """Take the screenshot; keep it in ``$QM_SERVER_SCREENSHOTS`` when set."""
    shot = tmp_path / name
    driver.execute_script("window.scrollTo(0, 0)")
    if element is None:
        driver.save_screenshot(str(shot))
    else:
        element.screenshot(str(shot))
    keep = os.environ.get("QM_SERVER_SCREENSHOTS")
    if keep:
        shutil.copy(shot, Path(keep) / name)


def start(server: LiveServer, graph: str, text: str, *, wait: bool = False) -> str:
    with server.client() as client:
        response = client.post("/api/flows", json={"graph": graph, "input": text, "wait": wait})
        assert response.status_code in (200, 202), response.text
        flow_id: str = response.json()["flow_id"]
    return flow_id


def open_flow(
    driver: WebDriver, server: LiveServer, flow_id: str, width: int = 1400
) -> WebDriverWait[WebDriver]:
    driver.set_window_size(width, 1000)
    driver.get(f"{server.url}/#/flows/{flow_id}")
    wait = WebDriverWait(driver, 30)
    # Another flow's page may be open: wait for this one's.
    wait.until(lambda d: flow_id in d.find_element(By.ID, "flow-id").text)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#graph-area g.node"))
    return wait


def node(driver: WebDriver, name: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'#graph-area g.node[data-node-name="{name}"]')


def panel_texts(driver: WebDriver, selector: str) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, f"#node-detail {selector}")]


#: The graph's geometry as the browser laid it out: the page's and the graph area's
#: widths, and each node's box.
GEOMETRY = """
const area = document.querySelector('#graph-area');
const svg = area.querySelector('svg').getBoundingClientRect();
const boxes = [...area.querySelectorAll('g.node rect')].map((r) => {
  const b = r.getBoundingClientRect();
  const name = r.parentNode.dataset.nodeName;
  return {name, left: b.left, right: b.right, top: b.top, bottom: b.bottom};
});
return {page: document.documentElement.scrollWidth, view: document.documentElement.clientWidth,
        areaScroll: area.scrollWidth, areaClient: area.clientWidth,
        svg: {left: svg.left, right: svg.right, top: svg.top, bottom: svg.bottom}, boxes};
"""


def assert_fits(driver: WebDriver, count: int) -> None:
    geometry: dict[str, Any] = driver.execute_script(GEOMETRY)
    assert geometry["page"] <= geometry["view"], "the page scrolls horizontally"
    assert geometry["areaScroll"] <= geometry["areaClient"], "the graph scrolls horizontally"
    boxes = geometry["boxes"]
    assert len(boxes) == count
    svg = geometry["svg"]
    for box in boxes:
        assert svg["left"] <= box["left"], box
        assert box["right"] <= svg["right"], box
        assert svg["top"] <= box["top"], box
        assert box["bottom"] <= svg["bottom"], box
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart = (
                a["right"] <= b["left"]
                or b["right"] <= a["left"]
                or a["bottom"] <= b["top"]
                or b["bottom"] <= a["top"]
            )
            assert apart, f"{a['name']} overlaps {b['name']}"


def test_a_nine_node_flow_fits_1400px_and_its_panel_shows_what_each_node_did(
    live: LiveServer, openai_server: FakeOpenAI, browser: WebDriver, tmp_path: Path
) -> None:
    openai_server.reply(
        completion("billing", model="gpt-4o-mini-2024"),
        completion("We will refund the invoice.", model="gpt-4o-2024"),
    )
    flow_id = start(live, "inspector", "My invoice is wrong", wait=True)
    wait = open_flow(browser, live, flow_id)
    wait.until(lambda d: d.find_element(By.ID, "flow-status").text == "completed")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#waterfall g.wf-row")) == 9)
    assert_fits(browser, 9)
    states = {
        n.get_attribute("data-node-name"): n.get_attribute("data-state")
        for n in browser.find_elements(By.CSS_SELECTOR, "#graph-area g.node")
    }
    assert set(states.values()) == {"finished"}, states

    node(browser, "Remember ticket").click()
    wait.until(lambda d: panel_texts(d, ".memory-changes th") == ["ticket_text"])
    assert panel_texts(browser, ".memory-changes td") == ["My invoice is wrong"]

    node(browser, "Classify").click()
    wait.until(lambda d: panel_texts(d, ".llm-model") == ["gpt-4o-mini-2024"])
    assert panel_texts(browser, ".llm-tokens") == ["11 → 7"]
    [duration] = panel_texts(browser, ".llm-duration")
    assert duration.endswith((" ms", " s")), duration
    assert panel_texts(browser, ".node-input pre") == [
        "Classify the ticket as billing or outage.",
        "My invoice is wrong",
    ]
    assert panel_texts(browser, ".node-input .role") == ["system", "user"]
    assert panel_texts(browser, ".node-output") == ["billing"]
    assert panel_texts(browser, ".node-errors") == []
    screenshot(
        browser, "page-node.png", tmp_path, browser.find_element(By.CSS_SELECTOR, ".inspector")
    )
    browser.set_window_size(1400, 1260)
    assert_fits(browser, 9)
    screenshot(browser, "page-flow.png", tmp_path)

    node(browser, "Remember reply").click()
    wait.until(lambda d: panel_texts(d, ".memory-changes th") == ["status"])
    assert panel_texts(browser, ".memory-changes td") == ["answered"]
    assert panel_texts(browser, ".node-llm") == []


def test_a_failed_llm_call_shows_its_error_in_the_panel_and_the_waterfall(
    live: LiveServer, openai_server: FakeOpenAI, browser: WebDriver
) -> None:
    openai_server.reply(error(400, "model overloaded"))
    flow_id = start(live, "inspector", "My invoice is wrong", wait=True)
    wait = open_flow(browser, live, flow_id)
    wait.until(lambda d: d.find_element(By.ID, "flow-status").text == "failed")
    wait.until(lambda d: node(d, "Classify").get_attribute("data-state") == "failed")
    node(browser, "Classify").click()
    expected = f"openai at {openai_server.base_url}: HTTP 400: model overloaded"
    wait.until(lambda d: panel_texts(d, ".node-errors .error") == [expected])
    assert panel_texts(browser, ".llm-calls tbody tr.failed td.error") == [expected]
    assert panel_texts(browser, ".llm-tokens") == [""]
    assert waterfall_rows(browser, ".state-failed") == ["Classify"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#waterfall g.wf-llm.failed")) == 1


def text(driver: WebDriver, selector: str) -> str:
    """The text of the first element ``selector`` finds, read at once (the waterfall is
    redrawn while the flow runs, so element references go stale)."""
    found: str = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';", selector
    )
    return found


def waterfall_rows(driver: WebDriver, state: str = "") -> list[str]:
    """The node names of the waterfall's rows (of ``state``, a class), top to bottom."""
    names: list[str] = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((r) => r.dataset.nodeName)",
        f"#waterfall g.wf-row{state}",
    )
    return names


def test_a_retried_node_lists_the_failed_attempt_and_each_run_is_one_click_away(
    live: LiveServer, openai_server: FakeOpenAI, browser: WebDriver
) -> None:
    openai_server.reply(
        error(503, "busy"),
        completion("billing", model="gpt-4o-mini-2024"),
        completion("We will refund the invoice.", model="gpt-4o-2024"),
    )
    flow_id = start(live, "inspector-retry", "My invoice is wrong", wait=True)
    wait = open_flow(browser, live, flow_id)
    wait.until(lambda d: d.find_element(By.ID, "flow-status").text == "completed")
    busy = f"openai at {openai_server.base_url}: HTTP 503: busy (after 0 retries)"
    assert waterfall_rows(browser)[2:4] == ["Classify", "Classify"]
    node(browser, "Classify").click()
    wait.until(lambda d: panel_texts(d, ".run-pick") == ["visit 1", "visit 1 · attempt 2"])
    # The latest run: it answered; the attempt before it failed and was retried.
    assert panel_texts(browser, ".run-pick.active") == ["visit 1 · attempt 2"]
    assert panel_texts(browser, ".node-errors .error") == [
        f"attempt 1 failed: {busy} (retried after 0.0 ms)"
    ]
    assert panel_texts(browser, ".node-output") == ["billing"]
    browser.find_element(By.CSS_SELECTOR, "#node-detail .run-pick").click()
    wait.until(lambda d: panel_texts(d, ".run-pick.active") == ["visit 1"])
    assert panel_texts(browser, "#node-state") == ["failed"]
    assert panel_texts(browser, ".node-errors .error") == [busy]
    assert panel_texts(browser, ".node-output") == []


def bar(driver: WebDriver, name: str) -> dict[str, float]:
    found: dict[str, float] = driver.execute_script(
        'const r = document.querySelector(`#waterfall g.wf-row[data-node-name="${arguments[0]}"]'
        " .wf-bar`); if (!r) return null;"
        "return {x: +r.getAttribute('x'), w: +r.getAttribute('width')};",
        name,
    )
    return found


def test_the_waterfall_grows_while_the_flow_runs_and_shows_parallel_branches(
    tmp_path: Path, openai_server: FakeOpenAI, browser: WebDriver
) -> None:
    slow = completion("We will refund the invoice.", model="gpt-4o-2024")
    slow.gate = threading.Event()  # Draft reply's call runs until the test opens it
    openai_server.reply(completion("billing", model="gpt-4o-mini-2024"), slow)
    server = inspector_server(tmp_path, openai_server, lookup=0.3)
    try:
        flow_id = start(server, "inspector", "My invoice is wrong")
        wait = open_flow(browser, server, flow_id)
        browser.set_window_size(1400, 1500)  # the waterfall in view, under the graph
        wait.until(lambda d: (bar(d, "Draft reply") or {}).get("w", 0) > 0)
        row = '#waterfall g.wf-row[data-node-name="Draft reply"]'
        assert browser.execute_script(
            "return document.querySelector(arguments[0]).classList.contains('state-running')", row
        )
        # Its bar and duration grow while the call runs; the LLM call shows under it.
        llm = '#waterfall g.wf-llm[data-node-name="Draft reply"]'
        wait.until(lambda d: text(d, f"{llm} .wf-label") == "↳ gpt-4o")
        first = text(browser, f"{row} .wf-duration")
        assert first.endswith("…"), first
        wait.until(lambda d: (now := text(d, f"{row} .wf-duration")) != first and now.endswith("…"))
        # The parallel lookup ends while the call still runs.
        wait.until(
            lambda d: (
                set(waterfall_rows(d, ".state-finished")[3:]) == {"Look up account", "Check policy"}
            )
        )
        screenshot(
            browser, "page-waterfall-live.png", tmp_path, browser.find_element(By.ID, "waterfall")
        )
        slow.gate.set()
        wait.until(lambda d: d.find_element(By.ID, "flow-status").text == "completed")
        wait.until(lambda d: len(waterfall_rows(d, ".state-finished")) == 9)
        rows = waterfall_rows(browser)
        assert rows[:3] == ["Start", "Remember ticket", "Classify"]
        assert set(rows[3:6]) == {"Draft reply", "Look up account", "Check policy"}
        assert rows[6:] == ["Collect", "Remember reply", "End"]
        draft, lookup, collect = (
            bar(browser, n) for n in ("Draft reply", "Look up account", "Collect")
        )
        # The parallel branches overlap in time; the merge starts after the slowest.
        assert lookup["x"] < draft["x"] + draft["w"]
        assert draft["x"] < lookup["x"] + lookup["w"]
        assert draft["w"] > lookup["w"]  # the LLM branch is the slow one
        assert collect["x"] >= draft["x"] + draft["w"] - 1
        assert text(browser, f"{llm} .wf-label") == "↳ gpt-4o-2024"
        screenshot(
            browser, "page-waterfall.png", tmp_path, browser.find_element(By.ID, "waterfall")
        )
    finally:
        slow.gate.set()
        server.stop()


def test_a_fifty_node_graph_fits_the_width_without_overlaps(
    live: LiveServer, browser: WebDriver, tmp_path: Path
) -> None:
    flow_id = start(live, "fifty", "go", wait=True)
    for width in (1400, 1000):
        wait = open_flow(browser, live, flow_id, width)
        wait.until(lambda d: d.find_element(By.ID, "flow-status").text == "completed")
        assert_fits(browser, 50)
    screenshot(browser, "page-fifty.png", tmp_path, browser.find_element(By.ID, "graph-area"))
    # The loop's back edge of the approval loop stays inside the drawing too.
    loop = start(live, "approval-loop", "Launch post", wait=True)
    open_flow(browser, live, loop, 1000)
    assert_fits(browser, 7)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#graph-area path.edge.back")) == 1


def test_the_flows_list_filters_by_status_and_searches(
    live: LiveServer, browser: WebDriver, tmp_path: Path
) -> None:
    start(live, "ticket-router", "My invoice is wrong", wait=True)
    start(live, "ticket-router", "The server is down", wait=True)
    paused = start(live, "approval-loop", "Launch post", wait=True)
    browser.set_window_size(1400, 900)
    browser.get(f"{live.url}/#/")
    wait = WebDriverWait(browser, 30)

    def listed(driver: WebDriver) -> list[list[str]]:
        """Each listed flow's id and input, read at once (the list is redrawn every second)."""
        found: list[list[str]] = driver.execute_script(
            "return [...document.querySelectorAll('#flows tbody tr')]"
            ".map((r) => [r.dataset.flowId, r.querySelector('td.input').textContent])"
        )
        return found

    wait.until(lambda d: len(listed(d)) == 3)
    assert browser.find_element(By.ID, "flow-count").text == "3 flows"
    screenshot(browser, "page-flows.png", tmp_path)

    Select(browser.find_element(By.ID, "status-filter")).select_by_value("paused")
    wait.until(lambda d: [flow for flow, _ in listed(d)] == [paused])
    assert browser.find_element(By.ID, "flow-count").text == "1 paused flow"

    Select(browser.find_element(By.ID, "status-filter")).select_by_value("")
    browser.find_element(By.ID, "search").send_keys("DOWN")
    wait.until(lambda d: [text for _, text in listed(d)] == ["The server is down"])
    assert browser.find_element(By.ID, "flow-count").text == "1 of 3 flows match"
    search = browser.find_element(By.ID, "search")
    search.clear()
    search.send_keys(paused[:8])
    wait.until(lambda d: [flow for flow, _ in listed(d)] == [paused])
    search.clear()
    search.send_keys("no such flow")
    wait.until(lambda d: listed(d) == [])
    assert browser.find_element(By.ID, "flow-count").text == "0 of 3 flows match"


def test_the_page_has_a_favicon(live: LiveServer, browser: WebDriver) -> None:
    with live.client() as client:
        response = client.get("/static/favicon.svg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.text.startswith("<svg")
    browser.get(f"{live.url}/#/")
    WebDriverWait(browser, 30).until(
        lambda d: (
            d.execute_script("return document.querySelector('header img.logo').naturalWidth") > 0
        )
    )
    href = browser.execute_script("return document.querySelector('link[rel=icon]').href")
    assert href == f"{live.url}/static/favicon.svg"


def test_the_flow_view_gives_each_runs_memory_changes_and_inputs(live: LiveServer) -> None:
    flow_id = start(live, "ticket-router", "My invoice is wrong", wait=True)
    with live.client() as client:
        view = client.get(f"/api/flows/{flow_id}").json()
    runs = {run["node_name"]: run for run in view["runs"]}
    ids = {node["name"]: node["id"] for node in view["graph_view"]["nodes"]}
    remember = runs["Remember ticket"]
    assert remember["memory_updates"] == {"ticket_text": "My invoice is wrong"}
    assert remember["inputs"] == [{"node_id": ids["Start"], "node_name": "Start", "visit": 1}]
    assert runs["Billing reply"]["memory_updates"] == {}
    assert runs["Billing reply"]["inputs"] == [
        {"node_id": ids["Classify"], "node_name": "Classify", "visit": 1}
    ]
