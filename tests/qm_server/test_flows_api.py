"""Starting, following, answering and stopping flows over HTTP, on a real server."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from conftest import sqlite_config
from qm_server_support import LiveServer, graphs_folder, logged_numbers, sse_events

from qm_server import ServerSettings

ROUTER = (
    "Thanks for reaching out about billing. We have forwarded your ticket to the accounts "
    "team; expect an answer within one business day."
)


def test_start_and_wait_answers_with_the_result(server: LiveServer) -> None:
    with server.client() as client:
        response = client.post(
            "/api/flows",
            json={"graph": "ticket-router", "input": "My invoice is wrong", "wait": True},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["status"], body["success"], body["output"]) == ("completed", True, ROUTER)
        flow = client.get(f"/api/flows/{body['flow_id']}").json()
    assert flow["status"] == "completed"
    assert [run["node_name"] for run in flow["runs"]] == [
        "Start", "Remember ticket", "Urgent?", "Classify", "Billing reply", "Remember reply", "End",
    ]  # fmt: skip
    states = {n["name"]: flow["node_states"][n["id"]] for n in flow["graph_view"]["nodes"]}
    assert states["Billing reply"] == "finished"
    assert (states["Urgent reply"], states["Outage reply"], states["General reply"]) == (
        "dead", "dead", "dead",
    )  # fmt: skip


def test_a_started_flow_is_followed_over_sse_with_its_tokens(server: LiveServer) -> None:
    with server.client() as client:
        started = client.post("/api/flows", json={"graph": "typewriter", "input": "one two three"})
        assert started.status_code == 202, started.text
        flow_id = started.json()["flow_id"]
        assert started.json() == {
            "flow_id": flow_id,
            "status": "running",
            "events": f"/api/flows/{flow_id}/events",
        }
        events = sse_events(client, f"/api/flows/{flow_id}/events")
    assert [e.event for e in events] == [
        "FlowStarted",
        "NodeStarted", "NodeFinished",
        "NodeStarted", "TokenGenerated", "TokenGenerated", "TokenGenerated", "NodeFinished",
        "NodeStarted", "NodeFinished",
        "FlowFinished",
    ]  # fmt: skip
    # Tokens take the number of the event before them: N.k is the k-th token after N.
    assert [e.id for e in events] == ["1", "2", "3", "4", "4.1", "4.2", "4.3", "5", "6", "7", "8"]
    assert [e.data["token"] for e in events if e.event == "TokenGenerated"] == [
        "one ", "two ", "three ",
    ]  # fmt: skip
    assert events[-1].data["final_output"] == "one two three"
    assert all(e.data["flow_id"] == flow_id and e.data["seq"] == e.number for e in events)


def test_a_reconnect_with_last_event_id_gets_no_gap_and_no_duplicate(server: LiveServer) -> None:
    with server.client() as client:
        words = " ".join(f"w{i}" for i in range(60))
        flow_id = client.post("/api/flows", json={"graph": "typewriter", "input": words}).json()[
            "flow_id"
        ]
        path = f"/api/flows/{flow_id}/events"
        first = sse_events(client, path, limit=7)  # cut while tokens stream
        second = sse_events(client, path, last_event_id=first[-1].id, limit=20)
        rest = sse_events(client, path, last_event_id=second[-1].id)
        whole = sse_events(client, path)
        after_the_end = client.get(path, headers={"last-event-id": whole[-1].id})
    assert after_the_end.status_code == 204  # an EventSource stops reconnecting
    assert "." in first[-1].id  # the first cut fell between two tokens
    joined = first + second + rest
    assert [e.id for e in joined] == [e.id for e in whole]
    assert logged_numbers(whole) == list(range(1, len(logged_numbers(whole)) + 1))
    assert joined == whole
    assert len([e for e in whole if e.event == "TokenGenerated"]) == 60
    assert whole[-1].event == "FlowFinished"


def test_a_paused_flow_is_answered_from_a_second_client(server: LiveServer) -> None:
    with server.client() as first, server.client() as second:
        paused = first.post(
            "/api/flows", json={"graph": "approval-loop", "input": "draft", "wait": True}
        ).json()
        flow_id = paused["flow_id"]
        assert paused["status"] == "paused"
        assert [(w["node_name"], w["prompt"]) for w in paused["waiting"]] == [
            ("Review", "Review 1 of 3: draft\nAnswer 'approve', or say what to change.")
        ]
        followed: list[str] = []
        follower = threading.Thread(
            target=lambda: followed.extend(
                e.event for e in sse_events(first, f"/api/flows/{flow_id}/events")
            )
        )
        follower.start()
        seen = second.get(f"/api/flows/{flow_id}").json()
        assert (seen["status"], [w["node_name"] for w in seen["waiting"]]) == ("paused", ["Review"])
        assert seen["node_states"][seen["waiting"][0]["node_id"]] == "waiting"
        revised = second.post(
            f"/api/flows/{flow_id}/resume", json={"answer": "shorter", "wait": True}
        ).json()
        assert (revised["status"], revised["waiting"][0]["prompt"].split("\n")[0]) == (
            "paused",
            "Review 2 of 3: draft (shorter)",
        )
        done = second.post(
            f"/api/flows/{flow_id}/resume",
            json={"answer": "approve", "node": "Review", "wait": True},
        ).json()
        follower.join(timeout=30)
        again = second.post(f"/api/flows/{flow_id}/resume", json={"answer": "approve"})
    assert (done["status"], done["output"]) == (
        "completed",
        "Published after 1 revision(s): draft (shorter)",
    )
    assert followed.count("UserInputRequired") == 2
    assert followed.count("FlowResumed") == 2
    assert followed[-1] == "FlowFinished"
    assert again.status_code == 409
    assert again.json() == {
        "error": {
            "code": "flow_not_waiting",
            "message": f"flow {flow_id} is completed; no node waits for input",
        }
    }


def test_a_start_or_an_answer_without_wait_is_accepted_even_if_done_at_once(
    server: LiveServer,
) -> None:
    """202 Accepted without ``wait``, also when the flow paused or ended before the
    answer went out (these take a few milliseconds): the result is for ``wait``."""
    with server.client() as client:
        started = client.post("/api/flows", json={"graph": "approval-loop", "input": "draft"})
        flow_id = started.json()["flow_id"]
        sse_events(client, f"/api/flows/{flow_id}/events", until="FlowPaused")
        accepted = client.post(f"/api/flows/{flow_id}/resume", json={"answer": "approve"})
        events = sse_events(client, f"/api/flows/{flow_id}/events")
        flow = client.get(f"/api/flows/{flow_id}").json()
    assert (started.status_code, started.json()) == (
        202,
        {"flow_id": flow_id, "status": "running", "events": f"/api/flows/{flow_id}/events"},
    )
    assert (accepted.status_code, accepted.json()) == (
        202,
        {"flow_id": flow_id, "status": "running"},
    )
    assert [e.event for e in events].count("FlowResumed") == 1
    assert events[-1].event == "FlowFinished"
    assert (flow["status"], flow["output"]) == ("completed", "Published after 0 revision(s): draft")


def test_a_running_flow_is_stopped(server: LiveServer) -> None:
    with server.client() as client:
        flow_id = client.post("/api/flows", json={"graph": "sleeper", "input": "x"}).json()[
            "flow_id"
        ]
        path = f"/api/flows/{flow_id}/events"
        assert [e.event for e in sse_events(client, path, limit=4)] == [
            "FlowStarted", "NodeStarted", "NodeFinished", "NodeStarted",
        ]  # fmt: skip
        busy = client.delete(f"/api/flows/{flow_id}")
        assert (busy.status_code, busy.json()["error"]["code"]) == (409, "flow_running")
        stopped = client.post(f"/api/flows/{flow_id}/stop")
        assert stopped.json() == {"flow_id": flow_id, "status": "stopping"}
        events = sse_events(client, path)
        flow = client.get(f"/api/flows/{flow_id}").json()
        deleted = client.delete(f"/api/flows/{flow_id}")
        gone = client.get(f"/api/flows/{flow_id}")
    assert events[-1].event == "FlowStopped"
    assert flow["status"] == "stopped"
    assert deleted.json() == {"flow_id": flow_id, "status": "deleted"}
    assert gone.status_code == 404
    assert gone.json() == {
        "error": {"code": "unknown_flow", "message": f"no flow {flow_id} in the store"}
    }


def test_flows_are_listed_by_status_a_page_at_a_time(server: LiveServer) -> None:
    with server.client() as client:
        done = [
            client.post(
                "/api/flows", json={"graph": "ticket-router", "input": f"t{i}", "wait": True}
            ).json()["flow_id"]
            for i in range(3)
        ]
        paused = client.post(
            "/api/flows", json={"graph": "approval-loop", "input": "d", "wait": True}
        ).json()["flow_id"]
        everything = client.get("/api/flows").json()
        page1 = client.get("/api/flows", params={"status": "completed", "limit": 2}).json()
        page2 = client.get(
            "/api/flows", params={"status": "completed", "limit": 2, "offset": 2}
        ).json()
        only_paused = client.get("/api/flows", params={"status": "paused"}).json()
    assert [f["flow_id"] for f in everything["flows"]] == [paused, *reversed(done)]
    assert ([f["flow_id"] for f in page1["flows"]], page1["more"]) == ([done[2], done[1]], True)
    assert ([f["flow_id"] for f in page2["flows"]], page2["more"]) == ([done[0]], False)
    assert [(f["flow_id"], f["graph"]) for f in only_paused["flows"]] == [(paused, "Approval Loop")]


def test_a_flow_paused_before_a_restart_is_answered_after_it(tmp_path: Path) -> None:
    """The store is the truth: a second server on the same SQLite file answers the pause,
    and its events continue the flow's numbering (a client's Last-Event-ID still holds)."""
    graphs = graphs_folder(tmp_path / "graphs")
    config = sqlite_config(tmp_path)
    first = LiveServer(ServerSettings(graphs_dir=graphs, config=config)).start()
    try:
        with first.client() as client:
            flow_id = client.post(
                "/api/flows", json={"graph": "approval-loop", "input": "memo", "wait": True}
            ).json()["flow_id"]
            before = sse_events(client, f"/api/flows/{flow_id}/events", limit=8)
    finally:
        first.stop()
    second = LiveServer(ServerSettings(graphs_dir=graphs, config=config)).start()
    try:
        with second.client() as client:
            seen = client.get(f"/api/flows/{flow_id}").json()
            done = client.post(
                f"/api/flows/{flow_id}/resume", json={"answer": "approve", "wait": True}
            ).json()
            after = sse_events(client, f"/api/flows/{flow_id}/events", last_event_id=before[-1].id)
            # From the start: what the first server's run logged comes from the store.
            whole = sse_events(client, f"/api/flows/{flow_id}/events")
    finally:
        second.stop()
    assert [(e.id, e.event) for e in whole] == [(e.id, e.event) for e in before + after]
    assert [e.event for e in before] == [
        "FlowStarted",
        "NodeStarted", "NodeFinished",
        "NodeStarted", "NodeFinished",
        "NodeStarted", "UserInputRequired",
        "FlowPaused",
    ]  # fmt: skip
    assert (seen["status"], [w["node_name"] for w in seen["waiting"]]) == ("paused", ["Review"])
    assert (done["status"], done["output"]) == ("completed", "Published after 0 revision(s): memo")
    assert after[0].event == "FlowResumed"
    numbers = logged_numbers(after)
    assert numbers == list(range(before[-1].number + 1, before[-1].number + 1 + len(numbers)))
    assert after[-1].event == "FlowFinished"


def test_a_flow_run_by_another_process_is_followed_from_the_store_log(tmp_path: Path) -> None:
    """The server did not run this flow: its stream is the store's durable log
    (every event but tokens), numbered as the store numbered it."""
    from quartermaster_engine import FlowRunner
    from quartermaster_graph import load_graph

    graphs = graphs_folder(tmp_path / "graphs")
    config = sqlite_config(tmp_path)
    elsewhere = FlowRunner.from_config(load_graph(graphs / "ticket-router.yaml"), config)
    try:
        result = elsewhere.run("The login page shows an error")
        logged = asyncio.run(_read_all(elsewhere, result.flow_id))
    finally:
        elsewhere.close()
    live = LiveServer(ServerSettings(graphs_dir=graphs, config=config)).start()
    try:
        with live.client() as client:
            events = sse_events(client, f"/api/flows/{result.flow_id}/events")
            tail = client.get(
                f"/api/flows/{result.flow_id}/events", headers={"last-event-id": events[-1].id}
            )
    finally:
        live.stop()
    assert [(e.id, e.event) for e in events] == [(str(e.seq), e.type) for e in logged]
    assert events[-1].event == "FlowFinished"
    assert tail.status_code == 204


async def _read_all(runner: Any, flow_id: Any) -> list[Any]:
    return [e async for e in runner.events(flow_id)]
