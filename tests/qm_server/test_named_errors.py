"""Requests the engine has a name for the error of get a 4xx JSON error with that
name, never a 500 and a dropped connection: text that is not Unicode, event ids
and offsets past 64 bits, graphs nested hundreds deep, resume racing stop or
delete. And every route's error responses are in the OpenAPI document."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import sqlite_config
from qm_server_support import LiveServer, graphs_folder

from qm_server import ServerSettings
from quartermaster_engine.runner.compiled_graphs import MAX_GRAPHS

JSON = {"content-type": "application/json"}


@pytest.fixture
def inline(tmp_path: Path) -> Iterator[LiveServer]:
    """A server that accepts inline graphs."""
    settings = ServerSettings(
        graphs_dir=graphs_folder(tmp_path / "graphs"),
        config=sqlite_config(tmp_path),
        allow_inline_graphs=True,
    )
    live = LiveServer(settings).start()
    yield live
    live.stop()


def _error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def _paused(client: httpx.Client) -> str:
    started = client.post("/api/flows", json={"graph": "approval-loop", "input": "d", "wait": True})
    assert started.json()["status"] == "paused"
    return str(started.json()["flow_id"])


def test_a_lone_surrogate_in_an_input_or_an_answer_is_a_400(inline: LiveServer) -> None:
    with inline.client() as client:
        start = client.post(
            "/api/flows", content=b'{"graph": "typewriter", "input": "\\ud800"}', headers=JSON
        )
        flow_id = _paused(client)
        answer = client.post(
            f"/api/flows/{flow_id}/resume", content=b'{"answer": "a\\udfff"}', headers=JSON
        )
        still = client.get(f"/api/flows/{flow_id}")
    assert _error(start) == (400, "invalid_text")
    assert start.json()["error"]["message"] == (
        "input_message is not valid Unicode text: it holds a lone surrogate '\\ud800' at position 0"
    )
    assert _error(answer) == (400, "invalid_text")
    assert still.json()["status"] == "paused"


@pytest.mark.parametrize(
    "last_event_id", ["²".encode("latin-1"), str(2**63).encode(), b"1.99999999999999999999"]
)
def test_a_last_event_id_that_names_no_event_is_a_400(
    inline: LiveServer, last_event_id: bytes
) -> None:
    with inline.client() as client:
        flow_id = _paused(client)
        response = client.get(
            f"/api/flows/{flow_id}/events", headers={"last-event-id": last_event_id}
        )
    assert _error(response) == (400, "invalid_last_event_id")


def test_offsets_past_the_limits_are_a_422(inline: LiveServer) -> None:
    with inline.client() as client:
        done = client.post("/api/flows", json={"graph": "typewriter", "input": "x", "wait": True})
        flow_id = done.json()["flow_id"]
        after = client.get(f"/api/flows/{flow_id}/events", params={"after": 2**63})
        offset = client.get("/api/flows", params={"offset": 2**63})
        largest = client.get(f"/api/flows/{flow_id}/events", params={"after": 2**63 - 1})
    assert _error(after) == (422, "validation_error")
    assert after.json()["error"]["problems"] == [
        "query.after: Input should be less than or equal to 9223372036854775807"
    ]
    assert _error(offset) == (422, "validation_error")
    assert offset.json()["error"]["problems"] == [
        "query.offset: Input should be less than or equal to 1000000"
    ]
    assert largest.status_code == 204  # an ended flow: nothing after the largest number


def test_an_inline_graph_nested_900_deep_is_a_422(inline: LiveServer) -> None:
    deep: dict[str, Any] = {}
    cursor = deep
    for _ in range(900):
        cursor["a"] = {}
        cursor = cursor["a"]
    spec = {
        "name": "deep",
        "nodes": [
            {"name": "Start", "type": "Start1", "metadata": deep},
            {"name": "End", "type": "End1"},
        ],
        "edges": [{"from": "Start", "to": "End"}],
    }
    with inline.client() as client:
        response = client.post("/api/flows", json={"graph_spec": spec, "wait": True})
    assert _error(response) == (422, "validation_error")
    assert response.json()["error"]["problems"] == [
        "body: Value error, graph_spec nests deeper than 32 levels"
    ]


@pytest.mark.parametrize("other", ["stop", "delete"])
def test_resume_racing_stop_or_delete_never_answers_500(inline: LiveServer, other: str) -> None:
    statuses: list[tuple[str, int, str]] = []
    with inline.client() as client:
        for _ in range(10):
            flow_id = _paused(client)
            barrier = threading.Barrier(2)

            def act(
                action: str, flow_id: str = flow_id, barrier: threading.Barrier = barrier
            ) -> None:
                with inline.client() as own:
                    barrier.wait()
                    if action == "resume":
                        r = own.post(f"/api/flows/{flow_id}/resume", json={"answer": "approve"})
                    elif action == "stop":
                        r = own.post(f"/api/flows/{flow_id}/stop")
                    else:
                        r = own.delete(f"/api/flows/{flow_id}")
                    code = r.json().get("error", {}).get("code", "") if r.status_code >= 400 else ""
                    statuses.append((action, r.status_code, code))

            threads = [threading.Thread(target=act, args=(a,)) for a in ("resume", other)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
    assert len(statuses) == 20
    failures = [s for s in statuses if s[1] >= 500]
    assert failures == []
    allowed = {
        "flow_not_waiting",
        "flow_state_conflict",
        "flow_busy",
        "unknown_flow",
        "flow_running",
        "flow_ended",
    }
    assert {code for _, status, code in statuses if status >= 400} <= allowed


def test_a_405_says_which_methods_are_allowed(inline: LiveServer) -> None:
    with inline.client() as client:
        response = client.put("/api/flows")
    assert _error(response) == (405, "method_not_allowed")
    assert response.headers["allow"] == "GET, POST"


def test_the_openapi_document_lists_each_routes_error_responses(inline: LiveServer) -> None:
    with inline.client() as client:
        schema = client.get("/openapi.json").json()
    listed = {
        (path, method): sorted(int(s) for s in op["responses"] if s[0] in "45")
        for path, item in schema["paths"].items()
        for method, op in item.items()
    }
    assert listed[("/api/flows", "post")] == [400, 401, 403, 404, 409, 413, 422, 500, 503]
    assert listed[("/api/flows/{flow_id}/resume", "post")] == [
        400,
        401,
        404,
        409,
        413,
        422,
        500,
        503,
    ]
    assert listed[("/api/flows/{flow_id}/events", "get")] == [400, 401, 404, 422, 500, 503]
    assert listed[("/api/flows/{flow_id}", "delete")] == [400, 401, 404, 409, 422, 500, 503]
    error = schema["paths"]["/api/flows"]["post"]["responses"]["409"]["content"]
    assert error["application/json"]["schema"]["properties"]["error"]["required"] == [
        "code",
        "message",
    ]


def _with_subgraph(reference: str) -> dict[str, Any]:
    return {
        "name": "outer",
        "nodes": [
            {"name": "Start", "type": "Start1"},
            {"name": "Sub", "type": "SubAssistant1", "metadata": {"graph": reference}},
            {"name": "End", "type": "End1"},
        ],
        "edges": [{"from": "Start", "to": "Sub"}, {"from": "Sub", "to": "End"}],
    }


def test_an_inline_graph_cannot_read_server_files_through_a_sub_graph_path(
    inline: LiveServer, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text("root_password: hunter2\n")
    answers = {}
    with inline.client() as client:
        for reference in (str(secret), "../secret.yaml", "../secret", str(tmp_path / "nothing")):
            answers[reference] = client.post(
                "/api/flows", json={"graph_spec": _with_subgraph(reference), "wait": True}
            )
        inside = client.post(
            "/api/flows",
            json={"graph_spec": _with_subgraph("typewriter"), "input": "hi", "wait": True},
        )
    for reference, answer in answers.items():
        assert answer.status_code == 422, answer.text
        assert "hunter2" not in answer.text
        assert "root_password" not in answer.text
        assert (
            f"sub-graph {reference!r} not found: it is no configured or registered graph name "
            "and no graph of the graphs folder"
        ) in answer.text
    # Existing or not, a file outside the folder gets the same answer.
    assert answers[str(secret)].json()["error"]["problems"] == [
        p.replace(str(tmp_path / "nothing"), str(secret))
        for p in answers[str(tmp_path / "nothing")].json()["error"]["problems"]
    ]
    assert inside.json()["status"] == "completed", inside.text


def _one_node(name: str, node_type: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "nodes": [
            {"name": "Start", "type": "Start1"},
            {"name": "Work", "type": node_type, "metadata": metadata or {}},
            {"name": "End", "type": "End1"},
        ],
        "edges": [{"from": "Start", "to": "Work"}, {"from": "Work", "to": "End"}],
    }


def test_a_blocking_executor_never_stalls_other_requests(tmp_path: Path) -> None:
    # No dispatcher configured: the server picks one that keeps its loop free.
    settings = ServerSettings(
        graphs_dir=graphs_folder(tmp_path / "graphs"),
        config={"store": {"name": "sqlite", "path": str(tmp_path / "flows.db")}},
        allow_inline_graphs=True,
    )
    live = LiveServer(settings).start()
    try:
        with live.client() as client:
            spec = _one_node("blocking", "test.Blocker", {"seconds": 3})
            started = client.post("/api/flows", json={"graph_spec": spec})
            began = time.monotonic()
            health = client.get("/api/health")
            took = time.monotonic() - began
            info = client.get("/api/server").json()
    finally:
        live.stop()
    assert started.status_code == 202
    assert health.json() == {"status": "ok"}
    assert took < 1.0, f"/api/health took {took:.1f} s while a node blocked"
    assert info["config"]["dispatcher"] == {"name": "thread"}


def test_the_server_keeps_a_bounded_number_of_compiled_graphs(inline: LiveServer) -> None:
    with inline.client() as client:
        for i in range(MAX_GRAPHS + 6):
            done = client.post(
                "/api/flows",
                json={"graph_spec": _one_node(f"g{i}", "test.Typewriter"), "wait": True},
            )
            assert done.status_code == 200, done.text
    service = inline.app_service()
    # One engine for every graph, keeping the most recently used graphs compiled.
    assert service.engine.graph_count == MAX_GRAPHS
