"""Map1 on real Celery workers: the items are ordinary activations, so they spread
over the workers; the join lists them in item order (docs/map.md)."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable

import pytest
from celery_support import Fleet
from test_child_flows import child_file

from quartermaster_engine import FlowRunner, FlowStatus
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


def _item_of_child(runner: FlowRunner, child_ids: set[str]) -> dict[str, str]:
    """Each child flow's input (its item), by the child's id."""
    return {c: call(runner.store, "get_flow", uuid.UUID(c)).input for c in child_ids}


def test_graph_items_are_child_flows_any_worker_advances(fleet: Fleet) -> None:
    """``graph=``: each item is a child flow stored for the workers; the item's
    activation waits in the store (no worker held) and its child's end wakes it."""
    child = child_file(fleet.directory, [("c0", "work", {"sleep": 0.1}), ("c1", "work", {})])
    fleet.start_workers(2, concurrency=2)
    graph = (
        Graph("Map of sub-graphs")
        .map("M", items="input.split()", graph=str(child), max_concurrency=2)
        .end()
        .build()
    )
    letters = "a b c d e"
    events: list[FlowEvent] = []
    with fleet.runner(graph, on_event=events.append) as runner:
        result = runner.run(letters)
        snap = call(runner.store, "load_flow", result.flow_id)
        lines = [line for line in fleet.lines() if line[3] in ("c0", "c1")]
        inputs = _item_of_child(runner, {line[2] for line in lines})
        children = [call(runner.store, "get_flow", uuid.UUID(c)) for c in inputs]
    assert result.status is FlowStatus.COMPLETED
    assert json.loads(result.final_output) == [f"c1(c0({x}))" for x in letters.split()]
    # One child flow per item, each child node run once, on both workers.
    assert sorted(inputs.values()) == letters.split()
    assert {c.parent_flow_id for c in children} == {result.flow_id}
    assert {c.status for c in children} == {FlowStatus.COMPLETED}
    assert Counter((inputs[line[2]], line[3]) for line in lines) == {
        (x, n): 1 for x in letters.split() for n in ("c0", "c1")
    }
    assert {fleet.worker_of(int(line[1])) for line in lines} == {0, 1}
    # Each item's activation parked on its child (running), then finished.
    item = next(n.id for n in snap.flow.graph.nodes if n.name == "M item")
    statuses = Counter(r.status.value for r in snap.records if r.node_id == item)
    assert statuses == {"running": 5, "finished": 5}
    progress = [e for e in events if isinstance(e, MapProgress)]
    assert [e.done for e in progress] == list(range(6))
    assert max(e.running for e in progress) == 2


@pytest.mark.slow
def test_a_worker_killed_during_an_item_s_child_only_unfinished_work_runs_again(
    make_fleet: Callable[..., Fleet],
) -> None:
    """SIGKILL of the worker running a node of one item's child flow: that node
    runs again on the other worker once the broker delivers its task again; no
    other node of any item's child runs twice, and the map joins every item."""
    fleet = make_fleet(visibility_timeout=4, restore_interval=1)
    nodes = [("c0", "work", {}), ("H", "hang", {"seconds": 1}), ("c1", "work", {})]
    child = child_file(fleet.directory, nodes)
    fleet.start_workers(2, concurrency=1)
    graph = Graph("Map kill").map("M", items="input.split()", graph=str(child), max_concurrency=2)
    letters = "a b c d"
    with fleet.runner(graph.end().build()) as runner:
        fid = runner.submit(letters)
        started = fleet.wait_for_line("started", "H")
        victim = fleet.worker_of(int(started[1]))
        fleet.kill(fleet.workers[victim])
        record = fleet.wait_status(runner.store, fid, "completed", timeout=120)
        lines = [line for line in fleet.lines() if line[3] in ("c0", "H", "c1")]
        inputs = _item_of_child(runner, {line[2] for line in lines})
    killed = inputs[started[2]]
    assert json.loads(record.final_output or "") == ["c1(hung)"] * 4
    assert sorted(inputs.values()) == letters.split()
    # Per item: each child node ran (committed) once; only the killed item's H
    # started twice (the first on the killed worker), every other H once.
    ran = Counter((inputs[line[2]], line[3]) for line in lines if line[0] == "ran")
    assert ran == {(x, n): 1 for x in letters.split() for n in ("c0", "H", "c1")}
    starts = Counter(inputs[line[2]] for line in lines if line[0] == "started")
    assert starts == {x: 2 if x == killed else 1 for x in letters.split()}
