"""The server on every store (memory, SQLite, Redis) and every local dispatcher (sync,
async, thread): start and await, pause and answer, follow with tokens."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from qm_server_support import LiveServer, graphs_folder, logged_numbers, sse_events

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "qm_store_redis"))

from qm_redis_support import RedisServer, unique_prefix

from qm_server import ServerSettings


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


STORES = ["memory", "sqlite", "redis"]
DISPATCHERS = ["sync", "async", "thread"]


def _store(name: str, tmp_path: Path, redis_url: str) -> dict[str, Any]:
    if name == "sqlite":
        return {"name": "sqlite", "path": str(tmp_path / "flows.db")}
    if name == "redis":
        return {"name": "redis", "url": redis_url, "key_prefix": unique_prefix()}
    return {"name": "memory"}


@pytest.mark.parametrize("dispatcher", DISPATCHERS)
@pytest.mark.parametrize("store", STORES)
def test_start_pause_answer_and_follow(
    store: str, dispatcher: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("redis_url") if store == "redis" else ""
    config = {"store": _store(store, tmp_path, url), "dispatcher": {"name": dispatcher}}
    live = LiveServer(ServerSettings(graphs_dir=graphs_folder(tmp_path / "g"), config=config))
    live.start()
    try:
        with live.client() as client:
            routed = client.post(
                "/api/flows",
                json={"graph": "ticket-router", "input": "error on login", "wait": True},
            ).json()
            paused = client.post(
                "/api/flows", json={"graph": "approval-loop", "input": "v1", "wait": True}
            ).json()
            done = client.post(
                f"/api/flows/{paused['flow_id']}/resume", json={"answer": "yes", "wait": True}
            ).json()
            typed = client.post("/api/flows", json={"graph": "typewriter", "input": "a b"}).json()
            events = sse_events(client, f"/api/flows/{typed['flow_id']}/events")
            server_info = client.get("/api/server").json()
    finally:
        live.stop()
    assert (routed["status"], routed["output"]) == (
        "completed",
        "We are sorry for the trouble. Our on-call engineer is looking at: error on login",
    )
    assert (paused["status"], done["status"], done["output"]) == (
        "paused",
        "completed",
        "Published after 0 revision(s): v1",
    )
    assert [e.data["token"] for e in events if e.event == "TokenGenerated"] == ["a ", "b "]
    numbers = logged_numbers(events)
    assert numbers == list(range(1, len(numbers) + 1))
    assert [e.id for e in events if e.event == "TokenGenerated"] == [
        f"{e.number}.{k}"
        for k, e in enumerate((t for t in events if t.event == "TokenGenerated"), 1)
    ]
    assert events[-1].event == "FlowFinished"
    assert server_info["config"]["store"]["name"] == store
    assert server_info["config"]["dispatcher"]["name"] == dispatcher


def test_two_clients_racing_to_answer_one_pause_get_one_resume(server: LiveServer) -> None:
    with server.client() as client:
        flow_id = client.post(
            "/api/flows", json={"graph": "approval-loop", "input": "race", "wait": True}
        ).json()["flow_id"]
    barrier = threading.Barrier(8)
    answers: list[tuple[int, str]] = []

    def answer(i: int) -> None:
        with server.client() as racer:
            barrier.wait()
            response = racer.post(
                f"/api/flows/{flow_id}/resume", json={"answer": "approve", "wait": True}
            )
            body = response.json()
            answers.append((response.status_code, body.get("status") or body["error"]["code"]))

    threads = [threading.Thread(target=answer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    with server.client() as client:
        flow = client.get(f"/api/flows/{flow_id}").json()
    assert sorted(answers) == [(200, "completed")] + [(409, "flow_not_waiting")] * 7
    assert [run["node_name"] for run in flow["runs"]] == [
        "Start", "Save draft", "Review", "Approved?", "Publish", "End",
    ]  # fmt: skip
