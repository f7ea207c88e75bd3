"""Errors as JSON with stable codes, and what keeps the server safe: the token, the body
limit, graph names that cannot leave the graphs folder, inline graphs off, CSP, masking."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from qm_server_support import TOKEN, LiveServer, graphs_folder

from qm_server import ServerSettings
from qm_server.security import CONTENT_SECURITY_POLICY


def test_an_unknown_graph_names_the_available_ones(server: LiveServer) -> None:
    with server.client() as client:
        response = client.post("/api/flows", json={"graph": "nope", "input": "x"})
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": "unknown_graph",
            "message": "no graph 'nope'; available: approval-loop, sleeper, slow-typewriter, "
            "ticket-router, typewriter",
        }
    }


def test_a_validation_error_lists_every_problem(server: LiveServer) -> None:
    with server.client() as client:
        response = client.post("/api/flows", json={"input": 5, "wait": "often", "colour": "red"})
    assert response.status_code == 422
    assert response.json() == {
        "error": {
            "code": "validation_error",
            "message": "invalid request: 3 problems",
            "problems": [
                "input: Input should be a valid string",
                "wait: Input should be a valid boolean, unable to interpret input",
                "colour: Extra inputs are not permitted",
            ],
        }
    }


def test_bad_flow_ids_and_unknown_flows(server: LiveServer) -> None:
    with server.client() as client:
        bad = client.get("/api/flows/not-a-uuid")
        unknown = client.post(
            "/api/flows/00000000-0000-0000-0000-000000000001/resume", json={"answer": "a"}
        )
    assert (bad.status_code, bad.json()["error"]) == (
        400,
        {"code": "invalid_flow_id", "message": "'not-a-uuid' is not a flow id"},
    )
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "unknown_flow")


def test_a_waiting_flow_refuses_an_answer_for_a_node_that_does_not_wait(
    server: LiveServer,
) -> None:
    with server.client() as client:
        flow_id = client.post(
            "/api/flows", json={"graph": "approval-loop", "input": "d", "wait": True}
        ).json()["flow_id"]
        response = client.post(
            f"/api/flows/{flow_id}/resume", json={"answer": "x", "node": "Publish"}
        )
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "flow_not_waiting"
    assert error["message"].startswith(f"node 'Publish' of flow {flow_id} is not waiting for input")


@pytest.mark.parametrize(
    "name",
    ["..%2F..%2Fetc%2Fpasswd", "..", "sub%2Fticket-router", ".hidden", "ticket-router.yaml%00"],
)
def test_graph_names_cannot_leave_the_graphs_folder(server: LiveServer, name: str) -> None:
    with server.client() as client:
        response = client.get(f"/api/graphs/{name}")
    assert response.status_code in (400, 404), response.text
    assert response.json()["error"]["code"] in ("invalid_graph_name", "not_found")


def test_a_path_as_graph_name_is_refused_when_starting(server: LiveServer) -> None:
    with server.client() as client:
        response = client.post("/api/flows", json={"graph": "../graphs/ticket-router"})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_graph_name",
        "message": "'../graphs/ticket-router' is not a graph name: use the file name without "
        "extension (letters, digits, '.', '_', '-'; no path)",
    }


def test_a_symlink_out_of_the_graphs_folder_is_not_a_graph(tmp_path: Path) -> None:
    graphs = graphs_folder(tmp_path / "graphs")
    outside = tmp_path / "outside.yaml"
    outside.write_text((graphs / "ticket-router.yaml").read_text())
    (graphs / "escape.yaml").symlink_to(outside)
    live = LiveServer(ServerSettings(graphs_dir=graphs)).start()
    try:
        with live.client() as client:
            listed = [g["name"] for g in client.get("/api/graphs").json()["graphs"]]
            response = client.get("/api/graphs/escape")
    finally:
        live.stop()
    assert listed == ["approval-loop", "sleeper", "slow-typewriter", "ticket-router", "typewriter"]
    assert (response.status_code, response.json()["error"]["code"]) == (404, "unknown_graph")


INLINE = {
    "name": "Inline",
    "nodes": [{"name": "Start", "type": "Start1"}, {"name": "End", "type": "End1"}],
    "edges": [{"from": "Start", "to": "End"}],
}


def test_inline_graphs_are_refused_unless_enabled(tmp_path: Path, server: LiveServer) -> None:
    with server.client() as client:
        refused = client.post("/api/flows", json={"graph_spec": INLINE, "input": "hi"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "inline_graphs_disabled"
    settings = ServerSettings(graphs_dir=graphs_folder(tmp_path / "g2"), allow_inline_graphs=True)
    live = LiveServer(settings).start()
    try:
        with live.client() as client:
            done = client.post(
                "/api/flows", json={"graph_spec": INLINE, "input": "hi", "wait": True}
            ).json()
            broken = client.post(
                "/api/flows",
                json={"graph_spec": {**INLINE, "edges": [{"from": "Start", "to": "Nowhere"}]}},
            )
    finally:
        live.stop()
    assert (done["status"], done["output"]) == ("completed", "hi")
    assert broken.status_code == 422
    assert broken.json()["error"]["code"] == "invalid_graph"


def test_every_route_but_health_needs_the_token(secured: LiveServer) -> None:
    with httpx.Client(base_url=secured.url) as anonymous:
        health = anonymous.get("/api/health")
        missing = anonymous.get("/api/flows")
        page = anonymous.get("/")
        schema = anonymous.get("/openapi.json")
        wrong = anonymous.get("/api/flows", headers={"authorization": "Bearer " + "x" * 27})
    with secured.client(TOKEN) as client:
        allowed = client.get("/api/flows")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    for refused in (missing, page, schema, wrong):
        assert refused.status_code == 401
        assert refused.json() == {
            "error": {"code": "unauthorized", "message": "a valid bearer token is required"}
        }
        assert refused.headers["www-authenticate"] == 'Bearer realm="qm-server"'
    assert allowed.status_code == 200


def test_the_page_logs_in_with_a_cookie_that_needs_a_header_to_change_anything(
    secured: LiveServer,
) -> None:
    with httpx.Client(base_url=secured.url) as browser:
        login = browser.get("/", params={"token": TOKEN})
        assert (login.status_code, login.headers["location"]) == (303, "/")
        assert login.headers["set-cookie"] == (
            f"qm_token={TOKEN}; HttpOnly; SameSite=Strict; Path=/"
        )
        page = browser.get("/")
        listed = browser.get("/api/flows")
        forged = browser.post("/api/flows", json={"graph": "ticket-router"})
        sent = browser.post(
            "/api/flows",
            json={"graph": "ticket-router", "wait": True},
            headers={"x-qm-request": "1"},
        )
        browser.cookies.clear()
        bad_login = browser.get("/", params={"token": "guess" * 5})
    assert (page.status_code, listed.status_code) == (200, 200)
    assert (forged.status_code, forged.json()["error"]["code"]) == (403, "missing_request_header")
    assert sent.json()["status"] == "completed"
    assert bad_login.status_code == 401


def test_oversized_bodies_are_refused(tmp_path: Path) -> None:
    settings = ServerSettings(graphs_dir=graphs_folder(tmp_path / "graphs"), max_body_bytes=1000)
    live = LiveServer(settings).start()
    try:
        with live.client() as client:
            big = {"graph": "ticket-router", "input": "x" * 2000}
            declared = client.post("/api/flows", json=big)

            def chunks() -> object:
                yield b'{"graph": "ticket-router", "input": "'
                for _ in range(10):
                    yield b"y" * 200
                yield b'"}'

            streamed = client.post(
                "/api/flows", content=chunks(), headers={"content-type": "application/json"}
            )
            small = client.post("/api/flows", json={"graph": "ticket-router", "wait": True})
    finally:
        live.stop()
    for refused in (declared, streamed):
        assert refused.status_code == 413
        assert refused.json() == {
            "error": {
                "code": "body_too_large",
                "message": "request body is larger than 1000 bytes",
            }
        }
    assert small.status_code == 200


def test_the_page_and_the_api_send_a_strict_content_security_policy(server: LiveServer) -> None:
    with server.client() as client:
        page = client.get("/")
        script = client.get("/static/app.js")
        api = client.get("/api/graphs")
    assert CONTENT_SECURITY_POLICY == (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    for response in (page, script, api):
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in page.text
    assert "style=" not in page.text
    assert script.headers["content-type"].startswith("text/javascript")


def test_passwords_in_the_config_never_appear_in_responses(tmp_path: Path) -> None:
    config = {
        "store": {"name": "redis", "url": "redis://app:hunter2-secret@127.0.0.1:1/0"},
        "sinks": [{"name": "otel", "headers": {"Authorization": "Bearer hunter2-token"}}],
    }
    settings = ServerSettings(graphs_dir=graphs_folder(tmp_path / "graphs"), config=config)
    live = LiveServer(settings).start()
    try:
        with live.client() as client:
            info = client.get("/api/server")
    finally:
        live.stop()
    assert "hunter2" not in info.text
    assert info.json()["config"]["store"]["url"] == "redis://app:***@127.0.0.1:1/0"
    assert info.json()["config"]["sinks"][0]["headers"] == "***"


def test_a_password_given_as_a_query_parameter_never_appears(tmp_path: Path) -> None:
    config = {"store": {"name": "redis", "url": "redis://127.0.0.1:1/0?password=hunter2"}}
    settings = ServerSettings(graphs_dir=graphs_folder(tmp_path / "graphs"), config=config)
    live = LiveServer(settings).start()
    try:
        with live.client() as client:
            info = client.get("/api/server")
    finally:
        live.stop()
    assert "hunter2" not in info.text
    assert info.json()["config"]["store"]["url"] == "redis://127.0.0.1:1/0?password=***"


def test_the_openapi_schema_documents_every_route(server: LiveServer) -> None:
    with server.client() as client:
        schema = client.get("/openapi.json").json()
    assert sorted((path, method) for path, item in schema["paths"].items() for method in item) == [
        ("/api/flows", "get"),
        ("/api/flows", "post"),
        ("/api/flows/{flow_id}", "delete"),
        ("/api/flows/{flow_id}", "get"),
        ("/api/flows/{flow_id}/edit", "post"),
        ("/api/flows/{flow_id}/events", "get"),
        ("/api/flows/{flow_id}/fork", "post"),
        ("/api/flows/{flow_id}/history", "get"),
        ("/api/flows/{flow_id}/resume", "post"),
        ("/api/flows/{flow_id}/retry", "post"),
        ("/api/flows/{flow_id}/stop", "post"),
        ("/api/graphs", "get"),
        ("/api/graphs/{name}", "get"),
        ("/api/health", "get"),
        ("/api/server", "get"),
    ]
