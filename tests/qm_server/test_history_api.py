"""``GET /api/flows/{id}/history`` on a real server over a SQLite file."""

from __future__ import annotations

from uuid import uuid4

from qm_server_support import LiveServer

NODES = [
    "Start",
    "Remember ticket",
    "Urgent?",
    "Classify",
    "Billing reply",
    "Remember reply",
    "End",
]


def test_the_history_of_a_flow_is_one_checkpoint_per_commit(server: LiveServer) -> None:
    with server.client() as client:
        started = client.post(
            "/api/flows",
            json={"graph": "ticket-router", "input": "My invoice is wrong", "wait": True},
        )
        assert started.status_code == 200, started.text
        flow_id = started.json()["flow_id"]
        response = client.get(f"/api/flows/{flow_id}/history")
        missing = uuid4()
        unknown = client.get(f"/api/flows/{missing}/history")
        invalid = client.get("/api/flows/nope/history")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["flow_id"], body["forked_from"]) == (flow_id, None)
    checkpoints = body["checkpoints"]
    assert [(c["seq"], c["node"], c["visit"], c["attempt"], c["outcome"]) for c in checkpoints] == [
        (i, name, 1, 1, "finished") for i, name in enumerate(NODES, 1)
    ]
    assert [c["memory"] for c in checkpoints[:2]] == [{}, {"ticket_text": "My invoice is wrong"}]
    assert checkpoints[0]["messages"] == [{"role": "user", "content": "My invoice is wrong"}]
    assert unknown.status_code == 404
    assert str(missing) in unknown.text
    assert invalid.status_code == 400
    assert "'nope' is not a flow id" in invalid.text
