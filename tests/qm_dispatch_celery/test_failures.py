"""Failures with real processes: a worker SIGKILLed mid-node, the client SIGKILLed,
a task delivered twice, activations never published (recover, the sweep)."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from celery_nodes import EXECUTORS
from celery_support import Fleet
from qm_redis_support import RedisServer

from quartermaster_engine import FlowRunner, FlowStatus, SimpleNodeRegistry
from quartermaster_engine.testing import build_graph, call, chain_graph
from quartermaster_engine.testing.graphs import name_id

CHAIN_WITH_HANG = build_graph(
    {
        "Start": "Start1",
        "A": "work",
        "H": {"type": "hang", "metadata": {"seconds": 3}},
        "B": "work",
        "End": "End1",
    },
    [("Start", "A"), ("A", "H"), ("H", "B"), ("B", "End")],
    name="hang",
)


def _finished(snap: Any) -> Counter[str]:
    names = {n.id: n.name for n in snap.flow.graph.nodes}
    return Counter(names[r.node_id] for r in snap.records if r.status.value == "finished")


@pytest.mark.slow
def test_a_worker_killed_mid_node_the_other_runs_it_and_nothing_reruns(
    make_fleet: Callable[..., Fleet],
) -> None:
    fleet = make_fleet(visibility_timeout=4, restore_interval=1)
    fleet.start_workers(2, concurrency=1)
    with fleet.runner(CHAIN_WITH_HANG) as runner:
        fid = runner.submit("x")
        started = fleet.wait_for_line("started", "H")
        victim = fleet.worker_of(int(started[1]))
        fleet.kill(fleet.workers[victim])
        record = fleet.wait_status(runner.store, fid, "completed", timeout=60)
        snap = call(runner.store, "load_flow", fid)
        result = runner.get_result(fid)
    assert record.final_output == "B(hung)"
    assert result.final_output == "B(hung)"
    # H started on both workers and finished once, on the survivor; the nodes
    # committed before the kill never ran again.
    starts = [line for line in fleet.lines() if line[0] == "started"]
    assert len(starts) == 2
    assert fleet.worker_of(int(fleet.wait_for_line("ran", "H")[1])) == 1 - victim
    assert fleet.runs() == {"A": 1, "H": 1, "B": 1}
    assert _finished(snap) == {"Start": 1, "A": 1, "H": 1, "B": 1, "End": 1}


CLIENT = """
import sys, uuid
from quartermaster_engine import FlowRunner
from quartermaster_engine.testing import build_graph
graph = build_graph(
    {"Start": "Start1", **{f"b{i}": {"type": "work", "metadata": {"sleep": 0.5}}
     for i in range(4)}, "J": {"type": "join", "traverse_in": "AwaitAll"}, "End": "End1"},
    [*(("Start", f"b{i}") for i in range(4)), *((f"b{i}", "J") for i in range(4)),
     ("J", "End")], name="fan")
runner = FlowRunner.from_config(graph, sys.argv[1])
print("running", flush=True)
runner.run("x", uuid.UUID(sys.argv[2]))
"""


@pytest.mark.slow
def test_the_client_killed_the_flow_completes_on_the_workers(fleet: Fleet) -> None:
    fleet.start_workers(2, concurrency=2)
    fid = uuid.uuid4()
    client = fleet.script(CLIENT, str(fleet.config), str(fid))
    fleet.wait_for_line("ran", "b0")
    client.kill()
    client.wait(10)
    shown = _wait_shown(fleet, str(fid))
    assert shown["status"] == "completed"
    assert shown["final_output"] == "b0(x)+b1(x)+b2(x)+b3(x)"
    assert fleet.runs() == {"b0": 1, "b1": 1, "b2": 1, "b3": 1, "J": 1}


def _wait_shown(fleet: Fleet, fid: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        shown = fleet.qm("flows", "show", fid, "--json")
        if shown.returncode == 0:
            data: dict[str, Any] = json.loads(shown.stdout)
            if data["status"] != "running":
                return data
        assert time.monotonic() < deadline, shown.stdout + shown.stderr
        time.sleep(0.2)


@pytest.mark.slow
def test_a_task_delivered_twice_commits_once(make_fleet: Callable[..., Fleet]) -> None:
    # The visibility timeout (1 s) is shorter than node H (3 s): the broker hands
    # H's task to the other worker while the first still runs it.
    fleet = make_fleet(visibility_timeout=1, restore_interval=1)
    fleet.start_workers(2, concurrency=1)
    with fleet.runner(CHAIN_WITH_HANG) as runner:
        result = runner.run("x")
        snap = call(runner.store, "load_flow", result.flow_id)
    assert result.final_output == "B(hung)"
    assert fleet.runs("started")["H"] >= 2
    assert fleet.runs()["B"] == 1
    assert _finished(snap) == {"Start": 1, "A": 1, "H": 1, "B": 1, "End": 1}


FAN = build_graph(
    {"Start": "Start1", "A": "work", "B": "work", "J": {"type": "join", "traverse_in": "AwaitAll"}},
    [("Start", "A"), ("Start", "B"), ("A", "J"), ("B", "J")],
    name="small-fan",
)


def test_recover_publishes_what_was_never_published(fleet: Fleet) -> None:
    fleet.start_worker(concurrency=2)
    # Stored by a runner that hands nothing to the workers (as a client that died
    # between storing the flow and publishing its start).
    local = _local_runner(fleet)
    with local:
        fid = local.submit("x")
        time.sleep(0.5)
        assert call(local.store, "get_flow", fid).status is FlowStatus.RUNNING
        assert fleet.runs() == {}
    with fleet.runner(FAN) as runner:
        result = runner.recover(fid)
    assert result.status is FlowStatus.COMPLETED
    assert result.node_results[name_id("J")].output_text == "A(x)+B(x)"
    assert fleet.runs() == {"A": 1, "B": 1, "J": 1}


def test_a_starting_worker_sweeps_idle_flows(make_fleet: Callable[..., Fleet]) -> None:
    fleet = make_fleet(stale_after=0.5)
    local = _local_runner(fleet)
    with local:
        fid = local.submit("x")
        time.sleep(0.6)
        fleet.start_worker(concurrency=1)
        fleet.wait_status(local.store, fid, "completed")
    assert fleet.runs() == {"A": 1, "B": 1, "J": 1}
    assert "sweep: published 1 pending activations of idle flows" in fleet.logs[0].read_text()


def _local_runner(fleet: Fleet) -> FlowRunner:
    """A runner on the fleet's store that hands nothing to the workers."""
    registry = SimpleNodeRegistry(EXECUTORS)
    return FlowRunner.from_config(FAN, str(fleet.config), dispatcher="sync", node_registry=registry)


@pytest.mark.slow
def test_the_broker_restarted_mid_run_the_flow_completes(
    make_fleet: Callable[..., Fleet], tmp_path: Path
) -> None:
    # A broker of its own that keeps its queues on disk (append-only, fsync always),
    # killed while a node runs and started again on the same port.
    broker = RedisServer(tmp_path / "broker", appendonly=True).start()
    try:
        fleet = make_fleet(broker.url, visibility_timeout=3, restore_interval=1)
        fleet.start_workers(2, concurrency=1)
        graph = chain_graph(6, "work")
        slow = graph.model_copy(deep=True)
        for node in slow.nodes:
            node.metadata["sleep"] = 0.5
        with fleet.runner(slow) as runner:
            fid = runner.submit("x")
            fleet.wait_for_line("ran", "n1")
            broker.kill()
            time.sleep(1.0)
            broker.start()
            record = fleet.wait_status(runner.store, fid, "completed", timeout=90)
            snap = call(runner.store, "load_flow", fid)
        assert record.final_output == "n3(n2(n1(n0(x))))"
        assert _finished(snap) == {"Start": 1, "n0": 1, "n1": 1, "n2": 1, "n3": 1, "End": 1}
    finally:
        broker.stop()


@pytest.mark.slow
def test_a_store_outage_of_30_s_the_flow_completes_soon_after_it_returns(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    # The store on a redis-server of its own (append-only, so a restart keeps the
    # flow), the broker on the module's: only the store goes away, for 30 s, while
    # activations keep failing against it on two workers.
    store = RedisServer(tmp_path / "store", appendonly=True).start()
    fleet = Fleet(tmp_path / "fleet", store.url, redis_server.url)
    try:
        fleet.start_workers(2, concurrency=1)
        graph = chain_graph(6, "work").model_copy(deep=True)
        for node in graph.nodes:
            node.metadata["sleep"] = 0.3
        with fleet.runner(graph) as runner:
            fid = runner.submit("x")
            fleet.wait_for_line("ran", "n1")
            store.kill()
            time.sleep(30)
            store.start()
            back = time.monotonic()
            record = fleet.wait_status(runner.store, fid, "completed", timeout=60)
            took = time.monotonic() - back
            snap = call(runner.store, "load_flow", fid)
        assert record.final_output == "n3(n2(n1(n0(x))))"
        assert _finished(snap) == {"Start": 1, "n0": 1, "n1": 1, "n2": 1, "n3": 1, "End": 1}
        # Retries back off to at most MAX_BACKOFF seconds: the flow finishes within
        # one backoff and its remaining nodes of the store's return.
        assert took < 8.0, f"completed {took:.1f} s after the store came back"
    finally:
        fleet.stop_all()
        store.stop()
