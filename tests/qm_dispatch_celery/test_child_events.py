"""A fleet child's durable events reach the client following its parent, marked
with the child's flow id and ``parent_flow_id`` as locally; a grandchild's tokens
and events reach the root's followers."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery_support import Fleet
from test_child_flows import child_file, parent_graph, run_acking

sys.path.insert(0, str(Path(__file__).parents[1] / "qm_sink_otel"))
sys.path.insert(0, str(Path(__file__).parents[1] / "qm_store_postgres"))

from otel_support import Spans, attrs, leaf
from otel_support import events as span_events
from qm_pg_support import PostgresServer, unique_schema

from quartermaster_engine import FlowStatus
from quartermaster_engine.events import ChildFlowWaited, FlowEvent, TokenGenerated
from quartermaster_engine.testing import call


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.remove()


@pytest.fixture(params=["redis", "postgres"])
def any_store_fleet(request: pytest.FixtureRequest, make_fleet: Callable[..., Fleet]) -> Fleet:
    """A fleet whose store is the broker's redis-server, or a PostgreSQL server."""
    if request.param == "redis":
        return make_fleet()
    pg: PostgresServer = request.getfixturevalue("postgres_server")
    store = {"name": "postgres", "url": pg.url, "schema_name": unique_schema()}
    return make_fleet(store=store)


def _rows(events: list[FlowEvent], names: dict[uuid.UUID, str]) -> list[tuple[str, ...]]:
    """(flow, parent, type, node name) of each event, the flows named."""
    return [
        (
            names[e.flow_id],
            "-" if e.parent_flow_id is None else names[e.parent_flow_id],
            e.type,
            getattr(e, "node_name", "") or "",
        )
        for e in events
    ]


def _seqs_by_flow(events: list[FlowEvent]) -> dict[uuid.UUID, list[int]]:
    found: dict[uuid.UUID, list[int]] = {}
    for e in events:
        if not isinstance(e, TokenGenerated):
            found.setdefault(e.flow_id, []).append(e.seq)
    return found


#: The parent's events up to its node's park, and after the wake.
PARENT_PARKS = [
    ("P", "-", "FlowStarted", ""),
    ("P", "-", "NodeStarted", "Start"),
    ("P", "-", "NodeFinished", "Start"),
    ("P", "-", "ChildFlowWaited", "Sub"),
]
PARENT_AFTER_WAKE = [
    ("P", "-", "NodeStarted", "Sub"),
    ("P", "-", "NodeFinished", "Sub"),
    ("P", "-", "NodeStarted", "After"),
    ("P", "-", "NodeFinished", "After"),
    ("P", "-", "NodeStarted", "End"),
    ("P", "-", "NodeFinished", "End"),
    ("P", "-", "FlowFinished", ""),
]

PARENT_THEN_CHILD = [
    *PARENT_PARKS,
    ("C", "P", "FlowStarted", ""),
    ("C", "P", "NodeStarted", "Start"),
    ("C", "P", "NodeFinished", "Start"),
    ("C", "P", "NodeStarted", "c0"),
    ("C", "P", "NodeFinished", "c0"),
    ("C", "P", "NodeStarted", "End"),
    ("C", "P", "NodeFinished", "End"),
    ("C", "P", "FlowFinished", ""),
    *PARENT_AFTER_WAKE,
]


def test_run_async_and_on_event_hear_the_child_s_events_in_order(any_store_fleet: Fleet) -> None:
    fleet = any_store_fleet
    child = child_file(fleet.directory, [("c0", "work", {})])
    fleet.start_worker(concurrency=2)
    heard: list[FlowEvent] = []
    with fleet.runner(parent_graph(child), on_event=heard.append) as runner:

        async def collect() -> list[FlowEvent]:
            return [event async for event in runner.run_async("x")]

        streamed = asyncio.run(collect())
        parent_id = streamed[0].flow_id
        waited = [e for e in streamed if isinstance(e, ChildFlowWaited)]
        child_id = waited[0].child_flow_id
        child_log = call(runner.store, "read_events", child_id, 0)
        record = call(runner.store, "get_flow", parent_id)
    names = {parent_id: "P", child_id: "C"}
    assert record.status is FlowStatus.COMPLETED
    assert _rows(streamed, names) == PARENT_THEN_CHILD
    # on_event (the runner's listeners) heard the same events, sinks too.
    assert _rows(heard[1:], names) == PARENT_THEN_CHILD[1:]
    # Each flow's events keep their own numbers, as logged.
    seqs = _seqs_by_flow(streamed)
    assert seqs[parent_id] == list(range(1, 12))
    assert seqs[child_id] == [e.seq for e in child_log] == list(range(1, 9))
    assert fleet.runs() == {"c0": 1, "After": 1}


def _sub_file(folder: Path, name: str, graph: Path) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\n"
        "nodes:\n"
        "  - {name: Start, type: Start1}\n"
        f"  - {{name: Inner, type: SubAssistant1, metadata: {{graph: '{graph}'}}}}\n"
        "  - {name: End, type: End1}\n"
        "edges:\n"
        "  - {from: Start, to: Inner}\n"
        "  - {from: Inner, to: End}\n",
        encoding="utf-8",
    )
    return path


def test_a_grandchild_s_tokens_and_events_reach_the_root_s_client(
    any_store_fleet: Fleet,
) -> None:
    """The grandchild's ``stream`` node streams ``a``, waits until the root's client
    heard it (file ``ack-<grandchild id>``), then ``b`` and ``c``: ``acked`` proves
    the token travelled live two levels up (Redis pub/sub, PostgreSQL NOTIFY)."""
    fleet = any_store_fleet
    grand_folder = fleet.directory / "grand"
    grand_folder.mkdir()
    grand = child_file(grand_folder, [("S", "stream", {})])
    child = _sub_file(fleet.directory, "middle", grand)
    fleet.start_worker(concurrency=2)
    events = run_acking(fleet, parent_graph(child))
    root = events[0].flow_id
    waits = [e for e in events if isinstance(e, ChildFlowWaited)]
    middle = waits[0].child_flow_id
    grandchild = waits[1].child_flow_id
    names: dict[uuid.UUID, Any] = {root: "P", middle: "C", grandchild: "G"}
    tokens = [e for e in events if isinstance(e, TokenGenerated)]
    assert [(t.token, names[t.flow_id], names[t.parent_flow_id]) for t in tokens] == [
        ("a ", "G", "C"),
        ("b ", "G", "C"),
        ("c ", "G", "C"),
    ]
    durable = [e for e in events if not isinstance(e, TokenGenerated)]
    assert _rows(durable, names) == [
        *PARENT_PARKS,
        ("C", "P", "FlowStarted", ""),
        ("C", "P", "NodeStarted", "Start"),
        ("C", "P", "NodeFinished", "Start"),
        ("C", "P", "ChildFlowWaited", "Inner"),
        ("G", "C", "FlowStarted", ""),
        ("G", "C", "NodeStarted", "Start"),
        ("G", "C", "NodeFinished", "Start"),
        ("G", "C", "NodeStarted", "S"),
        ("G", "C", "NodeFinished", "S"),
        ("G", "C", "NodeStarted", "End"),
        ("G", "C", "NodeFinished", "End"),
        ("G", "C", "FlowFinished", ""),
        ("C", "P", "NodeStarted", "Inner"),
        ("C", "P", "NodeFinished", "Inner"),
        ("C", "P", "NodeStarted", "End"),
        ("C", "P", "NodeFinished", "End"),
        ("C", "P", "FlowFinished", ""),
        *PARENT_AFTER_WAKE,
    ]
    # The tokens came before their node's events, once each.
    s_started = next(i for i, e in enumerate(events) if getattr(e, "node_name", "") == "S")
    assert max(events.index(t) for t in tokens) < s_started
    finished = [e for e in events if e.type == "FlowFinished" and e.flow_id == root]
    assert [e.final_output for e in finished] == ["After(acked)"]  # type: ignore[attr-defined]


def test_the_client_s_otel_spans_nest_the_child_under_its_node_s_run(fleet: Fleet) -> None:
    """An OTel sink on the client (the in-memory exporter of the sink's tests): the
    child's flow span is under the sub-graph node's span (one span from the park
    to the end of its run after the wake), in the parent's trace."""
    child = child_file(fleet.directory, [("c0", "work", {})])
    fleet.start_worker(concurrency=2)
    spans = Spans()
    try:
        with fleet.runner(parent_graph(child), on_event=spans.sink.emit) as runner:
            result = runner.run("x")
        tree = spans.tree()
        sub = spans.one("node Sub")
        child_span = spans.one("invoke_agent Child")
    finally:
        spans.sink.close()
    assert result.status is FlowStatus.COMPLETED
    assert tree == [
        (
            "invoke_agent parent",
            [
                ("node Start", []),
                ("node Sub", [("invoke_agent Child", leaf("node Start", "node c0", "node End"))]),
                ("node After", []),
                ("node End", []),
            ],
        )
    ]
    child_id = attrs(child_span)["qm.flow.id"]
    assert child_span.context.trace_id == result.flow_id.int
    assert attrs(child_span)["qm.flow.parent_id"] == str(result.flow_id)
    assert span_events(sub) == [("qm.node.child_flow_waited", {"child_flow_id": child_id})]
    assert attrs(sub)["qm.node.status"] == "completed"
    assert sub.start_time <= child_span.start_time <= child_span.end_time <= sub.end_time
