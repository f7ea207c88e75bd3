"""Child flows on the fleet: a sub-graph node (SubAssistant1) stores its child flow,
the parent's activation waits in the store (no worker held), any worker advances
the child, and the child's end wakes the parent with its result."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from celery_support import Fleet

from quartermaster_engine import FlowStatus
from quartermaster_engine._sync import run_sync
from quartermaster_engine.events import FlowEvent, TokenGenerated
from quartermaster_engine.runner import fleet_children
from quartermaster_engine.testing import build_graph, call, chain_graph
from quartermaster_engine.testing.graphs import name_id


def child_file(folder: Path, nodes: list[tuple[str, str, dict[str, Any]]]) -> Path:
    """A chain graph file ``Start -> nodes... -> End`` (hand-written form)."""
    lines = ["name: Child", "nodes:", "  - {name: Start, type: Start1}"]
    for name, kind, metadata in nodes:
        meta = ", ".join(f"{k}: {v}" for k, v in metadata.items())
        lines.append(f"  - {{name: {name}, type: {kind}, metadata: {{{meta}}}}}")
    lines += ["  - {name: End, type: End1}", "edges:"]
    names = ["Start", *(n for n, _, _ in nodes), "End"]
    lines += [f"  - {{from: {a}, to: {b}}}" for a, b in itertools.pairwise(names)]
    path = folder / "child.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def parent_graph(child: Path) -> Any:
    return build_graph(
        {
            "Start": "Start1",
            "Sub": {"type": "SubAssistant1", "metadata": {"graph": str(child)}},
            "After": "work",
            "End": "End1",
        },
        [("Start", "Sub"), ("Sub", "After"), ("After", "End")],
        name="parent",
    )


def run_acking(fleet: Fleet, graph: Any) -> list[FlowEvent]:
    """The events of ``run_async("x")`` of ``graph``; on hearing the token ``a `` of a
    ``stream`` node, the file ``ack-<its flow id>`` that lets the node go on."""
    with fleet.runner(graph) as runner:

        async def collect() -> list[FlowEvent]:
            events: list[FlowEvent] = []
            async for event in runner.run_async("x"):
                events.append(event)
                if isinstance(event, TokenGenerated) and event.token == "a ":
                    fleet.side.with_name(f"ack-{event.flow_id}").write_text("heard")
            return events

        return asyncio.run(collect())


def chained(names: list[str], text: str) -> str:
    for name in names:
        text = f"{name}({text})"
    return text


def _by_status(snap: Any) -> Counter[tuple[str, str]]:
    names = {n.id: n.name for n in snap.flow.graph.nodes}
    return Counter((names[r.node_id], r.status.value) for r in snap.records)


def _child_id(fleet: Fleet, node: str) -> uuid.UUID:
    return uuid.UUID(fleet.wait_for_line("ran", node)[2])


CHILD_NODES = [f"c{i}" for i in range(20)]


def test_a_child_flow_s_nodes_spread_over_two_workers_and_wake_the_parent(
    fleet: Fleet,
) -> None:
    child = child_file(fleet.directory, [(n, "work", {"sleep": 0.05}) for n in CHILD_NODES])
    fleet.start_workers(2, concurrency=2)
    events: list[FlowEvent] = []
    with fleet.runner(parent_graph(child), on_event=events.append) as runner:
        result = runner.run("x")
        parent = call(runner.store, "load_flow", result.flow_id)
        child_id = _child_id(fleet, "c0")
        snap = call(runner.store, "load_flow", child_id)
    assert result.status is FlowStatus.COMPLETED
    assert result.final_output == f"After({chained(CHILD_NODES, 'x')})"
    # Each child node ran once, in the child flow; both workers ran some of them.
    assert fleet.runs() == {**dict.fromkeys(CHILD_NODES, 1), "After": 1}
    child_lines = [line for line in fleet.lines() if line[3] in CHILD_NODES]
    assert {line[2] for line in child_lines} == {str(child_id)}
    assert {fleet.worker_of(int(line[1])) for line in child_lines} == {0, 1}
    assert snap.flow.parent_flow_id == result.flow_id
    assert snap.flow.status is FlowStatus.COMPLETED
    assert _by_status(snap) == {
        ("Start", "finished"): 1,
        **{(n, "finished"): 1 for n in CHILD_NODES},
        ("End", "finished"): 1,
    }
    # The parent's node was recorded running (parked on the child), then finished.
    assert _by_status(parent) == {
        ("Start", "finished"): 1,
        ("Sub", "running"): 1,
        ("Sub", "finished"): 1,
        ("After", "finished"): 1,
        ("End", "finished"): 1,
    }
    sub = [r for r in parent.records if r.status.value == "finished" and r.output_data]
    assert [r.output_data["child_flow_id"] for r in sub] == [str(child_id)]
    # The client relayed the parent's log (the node's park, then its one run,
    # after the wake) and the child's (test_child_events.py checks the order).
    own = [e for e in events if e.flow_id == result.flow_id]
    assert [e.seq for e in own] == list(range(1, len(own) + 1))
    subs = [e.type for e in own if getattr(e, "node_name", None) == "Sub"]
    assert subs == ["ChildFlowWaited", "NodeStarted", "NodeFinished"]
    assert {(e.flow_id, e.parent_flow_id) for e in events} == {
        (result.flow_id, None),
        (child_id, result.flow_id),
    }


@pytest.mark.slow
def test_a_worker_killed_during_the_child_the_child_goes_on_on_the_other(
    make_fleet: Callable[..., Fleet],
) -> None:
    fleet = make_fleet(visibility_timeout=4, restore_interval=1)
    nodes = [(f"c{i}", "work", {}) for i in range(5)]
    nodes.append(("H", "hang", {"seconds": 3}))
    nodes += [(f"c{i}", "work", {}) for i in range(5, 10)]
    child = child_file(fleet.directory, nodes)
    fleet.start_workers(2, concurrency=1)
    with fleet.runner(parent_graph(child)) as runner:
        fid = runner.submit("x")
        started = fleet.wait_for_line("started", "H")
        victim = fleet.worker_of(int(started[1]))
        fleet.kill(fleet.workers[victim])
        record = fleet.wait_status(runner.store, fid, "completed", timeout=90)
        child_id = uuid.UUID(started[2])
        snap = call(runner.store, "load_flow", child_id)
    names = [n for n, _, _ in nodes]
    assert record.final_output == f"After({chained(names[6:], 'hung')})"
    # H started on both workers and finished once, on the survivor; every other
    # child node ran and committed exactly once.
    assert len([line for line in fleet.lines() if line[0] == "started"]) == 2
    assert fleet.worker_of(int(fleet.wait_for_line("ran", "H")[1])) == 1 - victim
    assert fleet.runs() == {**{n: 1 for n in names}, "After": 1}
    assert _by_status(snap) == {
        ("Start", "finished"): 1,
        **{(n, "finished"): 1 for n in names},
        ("End", "finished"): 1,
    }


def test_stop_of_the_parent_stops_its_child(fleet: Fleet) -> None:
    child = child_file(fleet.directory, [("c0", "work", {}), ("H", "hang", {"seconds": 60})])
    fleet.start_worker(concurrency=2)
    results: list[Any] = []
    with fleet.runner(parent_graph(child)) as runner:
        thread = threading.Thread(target=lambda: results.append(runner.run("x")))
        thread.start()
        started = fleet.wait_for_line("started", "H")
        child_id = uuid.UUID(started[2])
        fid = call(runner.store, "get_flow", child_id).parent_flow_id
        runner.stop(fid)
        thread.join(30)
        fleet.wait_for_line("cancelled", "H", timeout=10)
        child_record = fleet.wait_status(runner.store, child_id, "stopped", timeout=10)
        time.sleep(0.5)
        parent_record = call(runner.store, "get_flow", fid)
    assert results[0].status is FlowStatus.STOPPED
    assert parent_record.status is FlowStatus.STOPPED
    assert child_record.parent_flow_id == fid
    assert fleet.runs() == {"c0": 1}
    assert fleet.runs("cancelled") == {"H": 1}


def test_a_failed_child_fails_the_node_with_its_error(fleet: Fleet) -> None:
    child = child_file(fleet.directory, [("c0", "work", {}), ("F", "fail", {})])
    fleet.start_worker(concurrency=2)
    with fleet.runner(parent_graph(child)) as runner:
        result = runner.run("x")
        child_id = _child_id(fleet, "c0")
        snap = call(runner.store, "load_flow", child_id)
    f_id = next(n.id for n in snap.flow.graph.nodes if n.name == "F")
    assert result.status is FlowStatus.FAILED
    assert snap.flow.status is FlowStatus.FAILED
    assert result.error == (
        f"node 'Sub' ({name_id('Sub')}): sub-graph {str(child)!r} (flow {child_id}) failed: "
        f"node 'F' ({f_id}): ValueError: F always fails"
    )
    assert fleet.runs() == {"c0": 1, "F": 1}


def test_a_paused_child_pauses_the_parent_and_the_answer_reaches_it(fleet: Fleet) -> None:
    child = child_file(fleet.directory, [("c0", "work", {}), ("Ask", "ask", {})])
    fleet.start_worker(concurrency=2)
    with fleet.runner(parent_graph(child)) as runner:
        paused = runner.run("x")
        assert paused.status is FlowStatus.PAUSED
        assert [(w.node_name, w.prompt) for w in paused.waiting] == [("Sub", "Name?")]
        result = runner.resume(paused.flow_id, "Ada")
        child_id = _child_id(fleet, "c0")
        child_record = call(runner.store, "get_flow", child_id)
    assert result.status is FlowStatus.COMPLETED
    assert result.final_output == "After(hello Ada)"
    assert child_record.status is FlowStatus.COMPLETED
    assert fleet.runs() == {"c0": 1, "Ask": 2, "After": 1}


def test_recover_of_the_parent_continues_its_child_where_it_was(fleet: Fleet) -> None:
    """The only worker is killed during the child; the broker would deliver the lost
    task again only after its visibility timeout (an hour): recover of the parent
    hands the child's pending work to the new worker at once."""
    nodes = [("c0", "work", {}), ("H", "hang", {"seconds": 1}), ("c1", "work", {})]
    child = child_file(fleet.directory, nodes)
    fleet.start_worker(concurrency=1)
    with fleet.runner(parent_graph(child)) as runner:
        fid = runner.submit("x")
        fleet.wait_for_line("started", "H")
        fleet.kill(fleet.workers[0])
        fleet.start_worker(concurrency=1)
        result = runner.recover(fid)
    assert result.status is FlowStatus.COMPLETED
    assert result.final_output == "After(c1(hung))"
    assert fleet.runs() == {"c0": 1, "H": 1, "c1": 1, "After": 1}
    assert len([line for line in fleet.lines() if line[0] == "started"]) == 2


def test_two_processes_waking_the_parent_at_once_wake_it_once(fleet: Fleet) -> None:
    """Two wakes race (two engines, each its own lease owner): one commits, the other
    is refused; the node runs again, finds its child still running and waits anew."""
    child = child_file(fleet.directory, [("c0", "work", {}), ("H", "hang", {"seconds": 2})])
    fleet.start_worker(concurrency=2)
    graph = parent_graph(child)
    with fleet.runner(graph) as runner, fleet.runner(graph) as other:
        fid = runner.submit("x")
        child_id = uuid.UUID(fleet.wait_for_line("started", "H")[2])

        async def race() -> list[bool]:
            wakes = [fleet_children.wake_parent(r.engine, fid, child_id) for r in (runner, other)]
            return list(await asyncio.gather(*wakes))

        woken = run_sync(race())
        record = fleet.wait_status(runner.store, fid, "completed", timeout=60)
        parent = call(runner.store, "load_flow", fid)
    assert sorted(woken) == [False, True]
    assert record.final_output == "After(hung)"
    assert fleet.runs() == {"c0": 1, "H": 1, "After": 1}
    # Parked, woken early and parked again, then woken by the child's end.
    assert _by_status(parent)[("Sub", "running")] == 2
    assert _by_status(parent)[("Sub", "finished")] == 1


def test_a_child_stopped_on_its_own_fails_the_parent_s_node(fleet: Fleet) -> None:
    child = child_file(fleet.directory, [("c0", "work", {}), ("H", "hang", {"seconds": 60})])
    fleet.start_worker(concurrency=2)
    with fleet.runner(parent_graph(child)) as runner:
        fid = runner.submit("x")
        child_id = uuid.UUID(fleet.wait_for_line("started", "H")[2])
        runner.stop(child_id)
        record = fleet.wait_status(runner.store, fid, "failed", timeout=30)
        fleet.wait_for_line("cancelled", "H", timeout=10)
    assert record.error == (
        f"node 'Sub' ({name_id('Sub')}): sub-graph {str(child)!r} (flow {child_id}) was stopped"
    )
    assert fleet.runs() == {"c0": 1}
    assert fleet.runs("cancelled") == {"H": 1}


def test_the_sweep_stops_a_child_whose_parent_ended_before_handing_it_over(
    make_fleet: Callable[..., Fleet],
) -> None:
    """The parent was stopped while its node stored the child: the node's park was
    refused, so the child was never handed to the workers; the sweep stops it
    instead of running it."""
    fleet = make_fleet(stale_after=0.5)
    graph = chain_graph(3, "work")
    with fleet.runner(graph) as runner:
        engine = runner.engine

        async def make() -> tuple[uuid.UUID, uuid.UUID]:
            parent = engine.new_run(graph, "x")
            await parent.start_new()
            await parent.lease.release()
            child = engine.new_run(graph, "y", parent_flow_id=parent.flow_id)
            await child.start_new()
            await child.lease.release()
            await engine.stop(parent.flow_id)
            return parent.flow_id, child.flow_id

        _, child_id = run_sync(make())
        time.sleep(0.6)
        fleet.start_worker(concurrency=1)
        fleet.wait_status(runner.store, child_id, "stopped", timeout=30)
    time.sleep(0.5)
    assert fleet.runs() == {}


def test_a_child_s_tokens_reach_the_client_following_the_parent_live(fleet: Fleet) -> None:
    """The child's ``stream`` node streams ``a``, waits until the client heard it
    (file ``ack-<child id>``), then streams ``b`` and ``c``: its output ``acked``
    proves the token travelled live from the child's worker to the parent's client."""
    child = child_file(fleet.directory, [("S", "stream", {})])
    fleet.start_worker(concurrency=2)
    events = run_acking(fleet, parent_graph(child))
    tokens = [e for e in events if isinstance(e, TokenGenerated)]
    assert [t.token for t in tokens] == ["a ", "b ", "c "]
    parent_id = events[0].flow_id
    assert {(t.flow_id, t.parent_flow_id) for t in tokens} == {(_child_id(fleet, "S"), parent_id)}
    finished = [e for e in events if e.type == "FlowFinished"]
    assert [(e.flow_id, e.final_output) for e in finished] == [  # type: ignore[attr-defined]
        (_child_id(fleet, "S"), "acked"),
        (parent_id, "After(acked)"),
    ]
