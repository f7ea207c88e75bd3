"""The web page in a real headless Chromium (Debian's chromium and chromium-driver, driven
by Selenium with the driver's path given: nothing is downloaded). Assertions read the DOM.

Set ``QM_SERVER_SCREENSHOT=path.png`` to keep the screenshot the test takes (the one in
qm-server/README.md was made so)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from qm_server_support import TOKEN, LiveServer
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait


def _node(driver: WebDriver, name: str) -> object:
    return driver.find_element(By.CSS_SELECTOR, f'#graph-area g.node[data-node-name="{name}"]')


def _state(driver: WebDriver, name: str) -> str:
    # Read at once: the graph is drawn again when its width changes (a scroll bar).
    state: str | None = driver.execute_script(
        'const g = document.querySelector(`#graph-area g.node[data-node-name="${arguments[0]}"]`);'
        "return g ? g.dataset.state : null;",
        name,
    )
    return state or ""


def _listed(driver: WebDriver) -> list[list[str]]:
    # Read at once: the list is drawn again every second.
    rows: list[list[str]] = driver.execute_script(
        "return [...document.querySelectorAll('#flows tbody tr')].map((r) => "
        "[r.querySelector('td.graph').textContent, r.querySelector('td.status').textContent])"
    )
    return rows


def _wait_state(wait: WebDriverWait, name: str, state: str) -> None:
    wait.until(lambda d: _state(d, name) == state, f"node {name} never became {state}")


def _start(driver: WebDriver, wait: WebDriverWait, graph: str, text: str) -> None:
    driver.find_element(By.ID, "home").click()
    wait.until(ec.visibility_of_element_located((By.ID, "start-form")))
    wait.until(
        lambda d: (
            graph
            in [o.get_attribute("value") for o in Select(d.find_element(By.ID, "graph")).options]
        )
    )
    Select(driver.find_element(By.ID, "graph")).select_by_value(graph)
    field = driver.find_element(By.ID, "input")
    field.clear()
    field.send_keys(text)
    driver.find_element(By.ID, "start").click()
    wait.until(ec.visibility_of_element_located((By.ID, "flow-view")))


def test_the_page_runs_the_router_and_answers_the_approval_loop(
    secured: LiveServer, browser: WebDriver, tmp_path: Path
) -> None:
    wait = WebDriverWait(browser, 30)
    browser.get(f"{secured.url}/?token={TOKEN}")  # sets the cookie, then redirects to /
    wait.until(lambda d: d.current_url == f"{secured.url}/#/" or d.current_url == f"{secured.url}/")

    _start(browser, wait, "ticket-router", "My invoice is wrong")
    wait.until(ec.text_to_be_present_in_element((By.ID, "flow-status"), "completed"))
    for name in ("Start", "Remember ticket", "Urgent?", "Classify", "Billing reply", "End"):
        _wait_state(wait, name, "finished")
    assert [_state(browser, n) for n in ("Urgent reply", "Outage reply", "General reply")] == [
        "dead", "dead", "dead",
    ]  # fmt: skip
    timeline = browser.execute_script(
        "return [...document.querySelectorAll('#waterfall g.wf-row')]"
        ".map((r) => r.dataset.nodeName)"
    )
    assert timeline == [
        "Start", "Remember ticket", "Urgent?", "Classify", "Billing reply", "Remember reply", "End",
    ]  # fmt: skip
    _node(browser, "Billing reply").click()  # type: ignore[attr-defined]
    output = wait.until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, "#node-detail .node-output"))
    )
    assert output.text.startswith("Thanks for reaching out about billing.")

    _start(browser, wait, "approval-loop", "Launch post")
    wait.until(ec.visibility_of_element_located((By.ID, "answer-form")))
    _wait_state(wait, "Review", "waiting")
    assert browser.find_element(By.ID, "flow-status").text == "paused"
    prompt = browser.find_element(By.ID, "answer-prompt").text
    assert prompt.startswith("Review 1 of 3: Launch post")
    _node(browser, "Save draft").click()  # type: ignore[attr-defined]
    shot = tmp_path / "page.png"
    browser.save_screenshot(str(shot))
    browser.find_element(By.ID, "answer").send_keys("approve")
    browser.find_element(By.ID, "answer-submit").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "flow-status"), "completed"))
    _wait_state(wait, "Publish", "finished")
    _wait_state(wait, "End", "finished")
    assert _state(browser, "Revise") == "dead"
    assert browser.find_element(By.ID, "flow-output").text == (
        "Output: Published after 0 revision(s): Launch post"
    )
    assert not browser.find_element(By.ID, "answer-form").is_displayed()

    browser.find_element(By.ID, "home").click()
    wait.until(lambda d: len(_listed(d)) == 2)
    assert [status for _, status in _listed(browser)] == ["completed", "completed"]
    with secured.client(TOKEN) as client:  # another client starts a flow: the list shows it
        client.post("/api/flows", json={"graph": "approval-loop", "input": "x", "wait": True})
    wait.until(lambda d: len(_listed(d)) == 3)
    assert _listed(browser)[0] == ["Approval Loop", "paused"]
    keep = os.environ.get("QM_SERVER_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def test_tokens_stream_into_the_running_node(server: LiveServer, browser: WebDriver) -> None:
    wait = WebDriverWait(browser, 30)
    words = " ".join(f"w{i}" for i in range(150))
    with server.client() as client:
        flow_id = client.post(
            "/api/flows", json={"graph": "slow-typewriter", "input": words}
        ).json()["flow_id"]
    browser.get(f"{server.url}/#/flows/{flow_id}")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#graph-area g[data-node-name="Type"]'))
    _node(browser, "Type").click()  # type: ignore[attr-defined]
    _wait_state(wait, "Type", "running")
    partial = wait.until(lambda d: d.find_elements(By.ID, "node-tokens"))[0].text
    still_running = _state(browser, "Type")
    wait.until(ec.text_to_be_present_in_element((By.ID, "flow-status"), "completed"))
    assert still_running == "running"
    assert partial
    assert words.startswith(partial.strip())
    assert len(partial) < len(words)
    # Once the node finished, its output replaces the stream.
    output = wait.until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, "#node-detail .node-output"))
    )
    assert output.text == words
    assert browser.find_elements(By.ID, "node-tokens") == []
