"""Exactly-once progress with real processes racing on one store (SQLite, Redis,
PostgreSQL).

Node work may run again when its driver dies mid-node (at-least-once); the
bookkeeping never does: each activation commits once, each answer is taken
once, a driver that lost its lease commits nothing.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from fencing_support import (
    finish,
    finished_per_node,
    go_when_ready,
    run,
    side_runs,
    start,
    stored,
    wait_for,
)
from race_worker import make_store

from quartermaster_engine import FlowRunner, SimpleNodeRegistry
from quartermaster_engine.testing import chain_graph
from quartermaster_engine.testing.calls import close_store

APPROVAL = ["Start", "Draft", "Ask", "Approved?", "Publish", "End"]


@pytest.mark.slow
def test_two_processes_resuming_the_same_paused_flows_take_each_answer_once(
    store_spec: dict[str, Any], tmp_path: Path
) -> None:
    side = tmp_path / "side.log"
    paused = run("pause", store=store_spec, side=str(side), count=200)
    flows = paused["flows"]
    assert paused["status"] == ["paused"] * 200
    go = tmp_path / "go"
    racers = [
        start("resume", store=store_spec, side=str(side), flows=flows, go=str(go)) for _ in range(2)
    ]
    go_when_ready(go, 2)
    outcomes = [finish(p)["outcomes"] for p in racers]

    runs = side_runs(side)
    for fid in flows:
        taken = [o[fid] for o in outcomes if o[fid].startswith("ok")]
        assert taken == ["ok completed"], (fid, [o[fid] for o in outcomes])
        (refused,) = [o[fid] for o in outcomes if not o[fid].startswith("ok")]
        # The loser hears that another process has the flow, or that it ended.
        assert refused.startswith(
            (f"busy flow {fid} is being run by ", f"state flow {fid} is completed")
        ), refused
        # Ask ran to pause and once more with the answer; every other node once.
        assert [runs[(fid, n)] for n in APPROVAL[1:-1]] == [1, 2, 1, 1]
        snap, events = stored(store_spec, fid)
        assert snap.flow.status.value == "completed"
        assert sorted(finished_per_node(snap).values()) == [1] * 6
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        kinds = Counter(e.type for e in events)
        assert (kinds["FlowResumed"], kinds["FlowFinished"], kinds["NodeFinished"]) == (1, 1, 6)


@pytest.mark.slow
def test_three_processes_recovering_one_killed_chain_run_each_node_once(
    store_spec: dict[str, Any], tmp_path: Path
) -> None:
    side, entered = tmp_path / "side.log", tmp_path / "entered"
    fid = str(uuid4())
    common = {"store": store_spec, "side": str(side), "size": 2002, "flow_id": fid}
    victim = start("run", **common, stall="n1500", entered=str(entered))
    wait_for(entered)
    victim.kill()
    victim.wait()

    go = tmp_path / "go"
    racers = [start("recover", **common, go=str(go)) for _ in range(3)]
    go_when_ready(go, 3)
    results = [finish(p) for p in racers]

    outcomes = sorted(r["outcome"] for r in results)
    assert outcomes == ["busy", "busy", "completed"], results
    for r in results:
        if r["outcome"] == "busy":
            assert r["error"].startswith(f"flow {fid} is being run by ")
            assert r["error"].endswith("; it is not interrupted")
    runs = side_runs(side)
    # Only the activation in flight at the kill ran twice.
    assert runs[(fid, "n1500")] == 2
    assert sum(runs.values()) == 2000 + 1
    snap, events = stored(store_spec, fid)
    assert snap.flow.status.value == "completed"
    assert len(snap.records) == 2002
    assert set(finished_per_node(snap).values()) == {1}
    # The log has no gap: what the killed process had not committed is not in it.
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    kinds = Counter(e.type for e in events)
    assert kinds["NodeFinished"] == 2002
    assert kinds["FlowResumed"] == 1
    assert events[0].type == "FlowStarted"
    assert events[-1].type == "FlowFinished"


@pytest.mark.slow
def test_a_stopped_driver_whose_lease_ran_out_is_taken_over_and_commits_nothing(
    store_spec: dict[str, Any], tmp_path: Path
) -> None:
    side, entered = tmp_path / "side.log", tmp_path / "entered"
    fid = str(uuid4())
    common = {"store": store_spec, "side": str(side), "size": 12, "flow_id": fid}
    zombie = start(
        "run", **common, stall="n4", stall_seconds=2.0, entered=str(entered), lease_seconds=1.0
    )
    wait_for(entered)
    os.kill(zombie.pid, signal.SIGSTOP)
    try:
        time.sleep(1.5)  # the lease runs out: the zombie cannot renew it
        taken = run("recover", **common, wait=10)
        assert taken["outcome"] == "completed"
    finally:
        os.kill(zombie.pid, signal.SIGCONT)
    late = finish(zombie)
    assert late["status"] == "failed"
    # Its first write after waking is refused: under a stale epoch, or to a flow
    # the taker has already finished.
    assert (
        f"flow {fid}: lease epoch 1 is stale; the flow is now at epoch 2" in late["error"]
        or f"flow {fid} is completed; nothing more is written" in late["error"]
    ), late["error"]

    runs = side_runs(side)
    assert runs[(fid, "n4")] == 2  # the zombie's run and the taker's
    assert sum(runs.values()) == 10 + 1
    snap, events = stored(store_spec, fid)
    assert snap.flow.status.value == "completed"
    assert snap.flow.lease_epoch == 2
    assert len(snap.records) == 12
    assert set(finished_per_node(snap).values()) == {1}
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


@pytest.mark.slow
def test_a_stop_from_another_process_ends_the_driver_as_stopped(
    store_spec: dict[str, Any], tmp_path: Path
) -> None:
    side, entered = tmp_path / "side.log", tmp_path / "entered"
    fid = str(uuid4())
    common = {"store": store_spec, "side": str(side), "size": 8, "flow_id": fid}
    driver = start("run", **common, stall="n2", stall_seconds=1.0, entered=str(entered))
    wait_for(entered)
    store = make_store(store_spec)
    stopper = FlowRunner(chain_graph(8, "work"), SimpleNodeRegistry({}), store=store)
    stopper.stop(UUID(fid))
    close_store(store)
    outcome = finish(driver)
    assert outcome == {"status": "stopped", "error": None}
    runs = side_runs(side)
    assert [runs[(fid, f"n{i}")] for i in range(6)] == [1, 1, 1, 0, 0, 0]  # nothing after n2
    snap, events = stored(store_spec, fid)
    assert snap.flow.status.value == "stopped"
    assert [e.type for e in events].count("FlowStopped") == 1
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
