"""Tokens streamed by nodes on real workers reach clients live, through the store's
pub/sub (Redis), never through the durable log: ``run_async``, ``on_event`` and the
server's SSE, numbered as local tokens are (the k-th token after event N is
``N.k``), and a reconnecting SSE client gets every durable event, without a gap.

The ``stream`` node streams ``a``, then waits for the test to acknowledge that a
client received ``a`` (file ``ack-<flow id>``), then streams ``b`` and ``c``: its
output ``acked`` proves the client heard ``a`` while the node was still running.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from celery_support import Fleet

from qm_server import ServerSettings
from quartermaster_engine.events import FlowEvent, TokenGenerated
from quartermaster_engine.testing import call, chain_graph

sys.path.insert(0, str(Path(__file__).parents[1] / "qm_server"))

from qm_server_support import LiveServer, Sse, logged_numbers, sse_events

STREAM_YAML = """\
name: Stream
nodes:
  - {name: Start, type: Start1}
  - {name: A, type: work}
  - {name: S, type: stream}
  - {name: End, type: End1}
edges:
  - {from: Start, to: A}
  - {from: A, to: S}
  - {from: S, to: End}
"""


def _ack(fleet: Fleet, flow_id: object) -> None:
    fleet.side.with_name(f"ack-{flow_id}").write_text("heard")


def _heard(fleet: Fleet, flow_id: object, event: Sse) -> None:
    """The client's first event: it listens, the node may stream; a token: ack it."""
    fleet.side.with_name(f"go-{flow_id}").write_text("listening")
    if event.event == "TokenGenerated":
        _ack(fleet, flow_id)


def test_run_async_yields_a_workers_tokens_live_numbered_after_the_event_before_them(
    fleet: Fleet,
) -> None:
    fleet.start_worker(concurrency=1)
    heard: list[FlowEvent] = []
    with fleet.runner(chain_graph(3, "stream"), on_event=heard.append) as runner:

        async def collect() -> list[FlowEvent]:
            events: list[FlowEvent] = []
            async for event in runner.run_async("x"):
                events.append(event)
                if isinstance(event, TokenGenerated) and event.token == "a ":
                    _ack(fleet, event.flow_id)
            return events

        events = asyncio.run(collect())
        logged = call(runner.engine.store, "read_events", events[0].flow_id, 0, 100)
    tokens = [e for e in events if isinstance(e, TokenGenerated)]
    assert [t.token for t in tokens] == ["a ", "b ", "c "]
    # Each token carries the number of the durable event before it in the stream.
    last = 0
    for event in events:
        if isinstance(event, TokenGenerated):
            assert event.seq == last, (event, last)
        else:
            assert event.seq == last + 1, (event, last)
            last = event.seq
    # The node's tokens come before its outcome; the output says "a" arrived live.
    finished = next(i for i, e in enumerate(events) if getattr(e, "node_name", "") == "n0"
                    and e.type == "NodeFinished")  # fmt: skip
    assert max(events.index(t) for t in tokens) < finished
    assert events[finished].result == "acked"  # type: ignore[attr-defined]
    assert events[-1].type == "FlowFinished"
    # Never through the durable log; on_event heard the same stream.
    assert [e.type for e in logged] == [e.type for e in events if not isinstance(e, TokenGenerated)]
    assert [(e.type, e.seq) for e in heard] == [(e.type, e.seq) for e in events]


def test_the_server_streams_a_workers_tokens_as_n_dot_k_and_a_reconnect_has_no_gap(
    fleet: Fleet, tmp_path: Path
) -> None:
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "stream.yaml").write_text(STREAM_YAML)
    fleet.start_workers(1, concurrency=2)
    server = LiveServer(ServerSettings(graphs_dir=graphs, config=str(fleet.config))).start()
    try:
        with server.client() as client:
            started = client.post("/api/flows", json={"graph": "stream", "input": "go"})
            assert started.status_code == 202, started.text
            flow_id = started.json()["flow_id"]
            path = f"/api/flows/{flow_id}/events"
            # Follow until the first token, acknowledge it, then reconnect from there.
            first = sse_events(client, path, limit=100, until="TokenGenerated")
            _ack(fleet, flow_id)
            rest = sse_events(client, path, last_event_id=first[-1].id)
            # A client that drops right after an early event gets all durable ones.
            again = sse_events(client, path, last_event_id="2")
    finally:
        server.stop()
    events = first + rest
    tokens = [e for e in events if e.event == "TokenGenerated"]
    assert [t.data["token"] for t in tokens] == ["a ", "b ", "c "]
    before = next(e for e in reversed(events[: events.index(tokens[0])]) if "." not in e.id)
    # S's tokens come after what was logged when S began (A finished), before S's end.
    assert (before.event, before.data["node_name"]) == ("NodeFinished", "A")
    assert [t.id for t in tokens] == [f"{before.id}.1", f"{before.id}.2", f"{before.id}.3"]
    numbers = logged_numbers(events)
    assert numbers == list(range(1, len(numbers) + 1))
    node_finished = [e for e in events if e.event == "NodeFinished"]
    assert [e.data["node_name"] for e in node_finished] == ["Start", "A", "S", "End"]
    assert node_finished[2].data["result"] == "acked"
    assert events[-1].event == "FlowFinished"
    assert logged_numbers(again) == numbers[2:]
    assert [t.id for t in again if t.event == "TokenGenerated"] == [t.id for t in tokens]


def test_a_server_that_did_not_start_the_flow_streams_its_tokens_too(
    fleet: Fleet, tmp_path: Path
) -> None:
    """A flow started by another server is followed from the store's durable log
    plus the store's live channel (the node streams once the follower listens)."""
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "stream.yaml").write_text(
        STREAM_YAML.replace("type: stream}", "type: stream, metadata: {wait_go: true}}")
    )
    fleet.start_workers(1, concurrency=2)
    settings = ServerSettings(graphs_dir=graphs, config=str(fleet.config))
    starter, follower = LiveServer(settings).start(), LiveServer(settings).start()
    try:
        with starter.client() as client:
            started = client.post("/api/flows", json={"graph": "stream", "input": "go"})
            assert started.status_code == 202, started.text
            flow_id = started.json()["flow_id"]
        with follower.client() as client:
            # One connection to the end: the first token is acknowledged as it arrives.
            events = sse_events(
                client,
                f"/api/flows/{flow_id}/events",
                on_event=lambda e: _heard(fleet, flow_id, e),
            )
    finally:
        starter.stop()
        follower.stop()
    tokens = [e for e in events if e.event == "TokenGenerated"]
    assert [t.data["token"] for t in tokens] == ["a ", "b ", "c "]
    n = tokens[0].number
    assert [t.id for t in tokens] == [f"{n}.1", f"{n}.2", f"{n}.3"]
    numbers = logged_numbers(events)
    assert numbers == list(range(1, len(numbers) + 1))
    assert [e.data["result"] for e in events if e.event == "NodeFinished"][2] == "acked"
    assert events[-1].event == "FlowFinished"
