"""``POST /api/flows/{id}/edit``, ``/retry`` and ``/fork`` on a real server over a
SQLite file: exact statuses and bodies, the engine's named errors as 4xx."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
from qm_server_support import GATE_YAML, LiveServer

from qm_store_sqlite import SQLiteStore
from quartermaster_engine import Engine
from quartermaster_engine.history.held import held


def _history(client: httpx.Client, flow_id: str) -> dict[str, Any]:
    response = client.get(f"/api/flows/{flow_id}/history")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _rows(history: dict[str, Any]) -> list[tuple[int, str, int, str]]:
    return [(c["seq"], c["node"], c["attempt"], c["outcome"]) for c in history["checkpoints"]]


def _error(response: httpx.Response) -> tuple[int, str, str]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["message"]


def test_a_failed_flow_is_edited_then_retried_over_http(server: LiveServer) -> None:
    (server.settings.graphs_dir / "gate.yaml").write_text(GATE_YAML)
    with server.client() as client:
        failed = client.post("/api/flows", json={"graph": "gate", "input": "hi", "wait": True})
        assert failed.status_code == 200, failed.text
        fid = failed.json()["flow_id"]
        assert failed.json()["status"] == "failed"
        assert failed.json()["error"].startswith("node 'Gate' (")
        assert failed.json()["error"].endswith("): RuntimeError: no limit in flow memory")
        nothing = client.post(f"/api/flows/{fid}/edit", json={})
        bad_role = client.post(
            f"/api/flows/{fid}/edit", json={"messages": [{"role": "boss", "content": "x"}]}
        )
        edited = client.post(f"/api/flows/{fid}/edit", json={"memory": {"limit": 5}})
        retried = client.post(f"/api/flows/{fid}/retry", json={"wait": True})
        again = client.post(f"/api/flows/{fid}/retry")
        late_edit = client.post(f"/api/flows/{fid}/edit", json={"memory": {"limit": 6}})
        history = _history(client, fid)
    assert _error(nothing) == (422, "validation_error", "invalid request: 1 problem")
    assert nothing.json()["error"]["problems"] == [
        "body: Value error, nothing to edit: give memory and/or messages"
    ]
    assert _error(bad_role)[:2] == (400, "invalid_edit")
    assert _error(bad_role)[2].startswith("each message must be a Message or a dict with 'role'")
    assert (edited.status_code, edited.json()) == (200, {"flow_id": fid, "checkpoint": 3})
    assert retried.status_code == 200, retried.text
    assert retried.json() == {
        "flow_id": fid,
        "status": "completed",
        "success": True,
        "output": "limit 5: hi",
        "error": None,
        "waiting": [],
    }
    assert _error(again) == (
        409,
        "flow_not_failed",
        f"flow {fid} is completed; only a failed flow can be retried",
    )
    assert _error(late_edit) == (
        409,
        "flow_state_conflict",
        f"flow {fid} is completed; only a paused, failed or stopped flow can be edited",
    )
    assert _rows(history) == [
        (1, "Start", 1, "finished"),
        (2, "Gate", 1, "failed"),
        (3, "", 0, "edited"),
        (4, "Gate", 2, "finished"),
        (5, "End", 1, "finished"),
    ]
    assert history["checkpoints"][2]["memory"] == {"limit": 5}


def test_a_paused_flow_is_edited_and_a_running_one_refused(server: LiveServer) -> None:
    with server.client() as client:
        paused = client.post(
            "/api/flows", json={"graph": "approval-loop", "input": "Launch post", "wait": True}
        ).json()["flow_id"]
        edited = client.post(
            f"/api/flows/{paused}/edit",
            json={"memory": {"revisions": 7}, "messages": [{"role": "user", "content": "Go"}]},
        )
        done = client.post(f"/api/flows/{paused}/resume", json={"answer": "yes", "wait": True})
        paused_history = _history(client, paused)
        running = client.post("/api/flows", json={"graph": "sleeper", "input": "x"}).json()[
            "flow_id"
        ]
        busy_edit = client.post(f"/api/flows/{running}/edit", json={"memory": {"a": 1}})
        busy_retry = client.post(f"/api/flows/{running}/retry")
        client.post(f"/api/flows/{running}/stop")
    assert (edited.status_code, edited.json()) == (200, {"flow_id": paused, "checkpoint": 4})
    assert done.json()["output"] == "Published after 7 revision(s): Launch post"
    edit = paused_history["checkpoints"][3]
    assert (edit["outcome"], edit["node"], edit["memory"]["revisions"]) == ("edited", "Review", 7)
    assert edit["messages"] == [{"role": "user", "content": "Go"}]
    assert _error(busy_edit) == (
        409,
        "flow_running",
        f"flow {running} is running; it can be edited once it stops",
    )
    assert _error(busy_retry) == (
        409,
        "flow_running",
        f"flow {running} is running; it can be retried once it stops",
    )


def test_a_fork_runs_from_its_checkpoint_and_records_its_lineage(server: LiveServer) -> None:
    with server.client() as client:
        original = client.post(
            "/api/flows",
            json={"graph": "ticket-router", "input": "My invoice is wrong", "wait": True},
        ).json()
        fid = original["flow_id"]
        forked = client.post(f"/api/flows/{fid}/fork", json={"at": 2, "wait": True})
        assert forked.status_code == 200, forked.text
        fork_id = forked.json()["flow_id"]
        fork_history = _history(client, fork_id)
        started = client.post(f"/api/flows/{fid}/fork", json={"at": 0, "input": "Site is down"})
        out_of_range = client.post(f"/api/flows/{fid}/fork", json={"at": 99})
        no_waiter = client.post(f"/api/flows/{fid}/fork", json={"answer": "yes"})
        bad_reuse = client.post(f"/api/flows/{fid}/fork", json={"reuse": "always"})
        bad_text = client.post(
            f"/api/flows/{fid}/fork",
            content=b'{"input": "\\ud800"}',  # a lone surrogate, escaped in JSON
            headers={"content-type": "application/json"},
        )
        missing = uuid4()
        unknown = client.post(f"/api/flows/{missing}/fork", json={})
        invalid = client.post("/api/flows/nope/fork", json={})
        unknown_edit = client.post(f"/api/flows/{missing}/edit", json={"memory": {"a": 1}})
        unknown_retry = client.post(f"/api/flows/{missing}/retry")
        assert started.status_code == 202, started.text
        second = started.json()["flow_id"]
        assert started.json() == {
            "flow_id": second,
            "status": "running",
            "events": f"/api/flows/{second}/events",
        }
        result = client.get(f"/api/flows/{second}")
        while result.json()["status"] == "running":
            time.sleep(0.02)
            result = client.get(f"/api/flows/{second}")
    assert forked.json() == {**original, "flow_id": fork_id}
    assert fork_id != fid
    assert fork_history["forked_from"] == {"flow_id": fid, "at": 2}
    assert _rows(fork_history) == _rows(_history_of(server, fid))
    assert result.json()["status"] == "completed"
    assert result.json()["output"] == (
        "We are sorry for the trouble. Our on-call engineer is looking at: Site is down"
    )
    assert _error(out_of_range) == (
        400,
        "invalid_fork",
        f"at must be a checkpoint of flow {fid}: a number from 0 to 7, got 99",
    )
    assert _error(no_waiter) == (
        409,
        "flow_state_conflict",
        f"answer given but no node of flow {fid} waits for input at checkpoint 7",
    )
    assert _error(bad_reuse)[:2] == (422, "validation_error")
    assert _error(bad_text) == (
        400,
        "invalid_text",
        "input is not valid Unicode text: it holds a lone surrogate '\\ud800' at position 0",
    )
    assert _error(unknown) == (404, "unknown_flow", f"no flow {missing} in the store")
    assert _error(invalid) == (400, "invalid_flow_id", "'nope' is not a flow id")
    assert _error(unknown_edit)[:2] == (404, "unknown_flow")
    assert _error(unknown_retry) == (404, "unknown_flow", f"no flow {missing} in the store")


def _history_of(server: LiveServer, flow_id: str) -> dict[str, Any]:
    with server.client() as client:
        return _history(client, flow_id)


def test_an_edit_or_retry_of_a_flow_another_process_holds_is_409_flow_busy(
    server: LiveServer, tmp_path: Path
) -> None:
    (server.settings.graphs_dir / "gate.yaml").write_text(GATE_YAML)
    with server.client() as client:
        paused = client.post(
            "/api/flows", json={"graph": "approval-loop", "input": "x", "wait": True}
        ).json()["flow_id"]
        failed = client.post(
            "/api/flows", json={"graph": "gate", "input": "hi", "wait": True}
        ).json()["flow_id"]
    answers: list[httpx.Response] = []

    async def hold_both() -> str:
        # Another engine on the same file takes both flows' leases (as a process
        # resuming or recovering them would) while the server is asked to act.
        async with Engine(store=SQLiteStore(tmp_path / "flows.db")) as other:
            async with held(other, UUID(paused), "testing"), held(other, UUID(failed), "testing"):
                with server.client() as client:
                    answers.append(
                        client.post(f"/api/flows/{paused}/edit", json={"memory": {"a": 1}})
                    )
                    answers.append(client.post(f"/api/flows/{failed}/retry"))
            return other.owner

    owner = asyncio.run(hold_both())
    edit, retry = answers
    for response, flow_id, what in ((edit, paused, "editing"), (retry, failed, "retrying")):
        status, code, message = _error(response)
        assert (status, code) == (409, "flow_busy"), response.text
        assert message.startswith(f"flow {flow_id} is being run by {owner} (lease epoch "), message
        assert message.endswith(f" left unless renewed); {what} a flow needs it"), message
    with server.client() as client:  # let go: both act
        edited = client.post(f"/api/flows/{paused}/edit", json={"memory": {"a": 1}})
        retried = client.post(f"/api/flows/{failed}/retry")
        flow = client.get(f"/api/flows/{failed}").json()
        while flow["status"] == "running":
            time.sleep(0.02)
            flow = client.get(f"/api/flows/{failed}").json()
    assert edited.json() == {"flow_id": paused, "checkpoint": 4}
    assert (retried.status_code, retried.json()) == (202, {"flow_id": failed, "status": "running"})
    # Still no limit: a second failed attempt.
    assert [(r["node_name"], r["attempt"], r["status"]) for r in flow["runs"]][1:] == [
        ("Gate", 1, "failed"),
        ("Gate", 2, "failed"),
    ]
