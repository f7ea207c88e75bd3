"""Flows on real Celery workers: one flow's nodes spread over worker processes."""

from __future__ import annotations

from collections import Counter
from typing import Any

from celery_support import Fleet

from quartermaster_engine import FlowStatus
from quartermaster_engine.events import FlowEvent
from quartermaster_engine.testing import build_graph, call


def fan(width: int, sleep: float = 0.0) -> Any:
    nodes: dict[str, Any] = {"Start": "Start1"}
    nodes.update({f"b{i}": {"type": "work", "metadata": {"sleep": sleep}} for i in range(width)})
    nodes["J"] = {"type": "join", "traverse_in": "AwaitAll"}
    nodes["End"] = "End1"
    edges = [("Start", f"b{i}") for i in range(width)]
    edges += [(f"b{i}", "J") for i in range(width)]
    edges.append(("J", "End"))
    return build_graph(nodes, edges, name="fan")


def test_fan_out_and_join_run_on_two_worker_processes(fleet: Fleet) -> None:
    fleet.start_worker(concurrency=2)
    fleet.start_worker(concurrency=2)
    events: list[FlowEvent] = []
    with fleet.runner(fan(8, sleep=0.2), on_event=events.append) as runner:
        result = runner.run("x")
        snap = call(runner.store, "load_flow", result.flow_id)
    assert result.status is FlowStatus.COMPLETED
    assert result.final_output == "+".join(sorted(f"b{i}(x)" for i in range(8)))
    assert fleet.runs() == {**{f"b{i}": 1 for i in range(8)}, "J": 1}
    # Both workers ran nodes of this one flow.
    assert {fleet.worker_of(pid) for pid in fleet.pids()} == {0, 1}
    assert Counter(r.status.value for r in snap.records) == {"finished": 11}
    # The client relayed every logged event, in order, without gaps.
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    kinds = Counter(e.type for e in events)
    assert (kinds["FlowStarted"], kinds["NodeStarted"], kinds["NodeFinished"]) == (1, 11, 11)
    assert kinds["FlowFinished"] == 1
