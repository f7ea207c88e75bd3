"""Map1 on real Celery workers: the items are ordinary activations, so they spread
over the workers; the join lists them in item order (docs/map.md)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable

import pytest
from celery_support import Fleet

from quartermaster_engine import FlowStatus
from quartermaster_engine.events import FlowEvent, MapProgress
from quartermaster_engine.testing import call
from quartermaster_graph import Graph, GraphNode


def test_map_items_spread_over_two_workers_and_join_in_order(fleet: Fleet) -> None:
    fleet.start_workers(2, concurrency=2)
    item = GraphNode(type="work", name="Item", metadata={"sleep": 0.2})
    graph = (
        Graph("Map on the fleet")
        .map("M", items="input.split()", node=item, max_concurrency=4)
        .end()
        .build()
    )
    letters = "a b c d e f g h i j k l"
    events: list[FlowEvent] = []
    with fleet.runner(graph, on_event=events.append) as runner:
        result = runner.run(letters)
        snap = call(runner.store, "load_flow", result.flow_id)
    assert result.status is FlowStatus.COMPLETED
    assert json.loads(result.final_output) == [f"Item({x})" for x in letters.split()]
    # Each item ran once, on both workers.
    assert fleet.runs() == {"Item": 12}
    assert {fleet.worker_of(pid) for pid in fleet.pids()} == {0, 1}
    statuses = Counter(r.status.value for r in snap.records if r.node_id == item.id)
    assert statuses == {"finished": 12}
    progress = [e for e in events if isinstance(e, MapProgress)]
    assert [e.done for e in progress] == list(range(13))
    assert max(e.running for e in progress) == 4
    assert progress[-1].running == 0


@pytest.mark.slow
def test_a_worker_killed_mid_item_only_that_item_runs_again(
    make_fleet: Callable[..., Fleet],
) -> None:
    fleet = make_fleet(visibility_timeout=4, restore_interval=1)
    fleet.start_workers(2, concurrency=1)
    item = GraphNode(type="hang", name="Item", metadata={"seconds": 1})
    graph = Graph("Map kill").map("M", items="input.split()", node=item, max_concurrency=2)
    with fleet.runner(graph.end().build()) as runner:
        fid = runner.submit("a b c d e f")
        started = _wait_for_start(fleet, visit="3")
        victim = fleet.worker_of(int(started[1]))
        fleet.kill(fleet.workers[victim])
        record = fleet.wait_status(runner.store, fid, "completed", timeout=90)
        snap = call(runner.store, "load_flow", fid)
    assert json.loads(record.final_output or "") == ["hung"] * 6
    # The item running on the killed worker started twice and finished once; the
    # items committed before the kill never ran again.
    items = [line for line in fleet.lines() if line[3] == "Item"]
    started_visits = Counter(line[4] for line in items if line[0] == "started")
    assert started_visits["3"] == 2
    assert {v: n for v, n in started_visits.items() if v != "3"} == {
        str(v): 1 for v in (1, 2, 4, 5, 6)
    }
    assert Counter(line[4] for line in items if line[0] == "ran") == {
        str(v): 1 for v in range(1, 7)
    }
    statuses = Counter(r.status.value for r in snap.records if r.node_id == item.id)
    assert statuses == {"finished": 6}


def _wait_for_start(fleet: Fleet, visit: str, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        for parts in fleet.lines():
            if parts[0] == "started" and parts[3] == "Item" and parts[4] == visit:
                return parts
        assert time.monotonic() < deadline, f"item visit {visit} never started: {fleet.lines()}"
        time.sleep(0.02)
