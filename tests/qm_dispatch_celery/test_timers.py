"""Timers with the celery dispatcher (real workers, redis-server): a sleeping flow
parks in the store instead of a broker ETA task, the workers' clock wakes it, and
a worker killed while flows sleep loses none."""

from __future__ import annotations

import time
from typing import Any

from celery import Celery
from celery_support import Fleet

from quartermaster_engine import FlowStatus
from quartermaster_engine._sync import run_sync
from quartermaster_engine.events import TimerSet
from quartermaster_engine.testing import call
from quartermaster_graph import GraphBuilder

NAP = GraphBuilder("Nap").start().sleep("nap", 2).end().build()


def _wait_for(runner: Any, ids: list[Any], status: FlowStatus, within: float) -> None:
    deadline = time.time() + within
    while True:
        flows = [call(runner.store, "get_flow", f) for f in ids]
        if all(f.status is status for f in flows):
            return
        assert time.time() < deadline, [f.status.value for f in flows]
        time.sleep(0.05)


def test_sleeping_flows_park_and_survive_a_killed_worker(fleet: Fleet) -> None:
    workers = fleet.start_workers(2)
    with fleet.runner(NAP) as runner:
        # A script's run waits out the sleep: the workers park the flow, the script
        # wakes it at its time and follows it to its end.
        began = time.time()
        done = runner.run("script")
        assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "script")
        assert 2.0 <= time.time() - began < 5.0
        ids = [run_sync(runner.engine.start(NAP, f"f{i}")) for i in range(10)]
        _wait_for(runner, ids, FlowStatus.PAUSED, within=20)  # parked by the workers
        for flow_id in ids:  # no lease, no broker task: only the store holds them
            assert call(runner.store, "get_flow", flow_id).lease_owner is None
        fleet.kill(workers[0])  # a worker dies while they sleep
        _wait_for(runner, ids, FlowStatus.COMPLETED, within=30)
        for flow_id, i in zip(ids, range(10), strict=True):
            snap = call(runner.store, "load_flow", flow_id)
            assert snap.flow.final_output == f"f{i}"
            events = list(call(runner.store, "read_events", flow_id))
            wake_at = next(e for e in events if isinstance(e, TimerSet)).wake_at
            kinds = [e.type for e in events]
            assert (kinds.count("TimerSet"), kinds.count("TimerFired")) == (1, 1)
            fired = next(e for e in events if e.type == "TimerFired")
            assert wake_at <= fired.ts <= wake_at + 3.0, (wake_at, fired.ts)


def test_the_workers_clocks_fire_a_schedule_once_per_tick(fleet: Fleet) -> None:
    fleet.start_workers(2)  # two clocks: each worker keeps one
    pulse = GraphBuilder("Pulse").start().end().build()
    with fleet.runner(pulse) as runner:
        run_sync(runner.engine.schedules.add("pulse", pulse, "* * * * * *", input="beat"))
        deadline = time.time() + 30
        while len(call(runner.store, "list_flows", status=FlowStatus.COMPLETED)) < 3:
            assert time.time() < deadline, "the workers' clocks started fewer than 3 flows"
            time.sleep(0.05)
        assert run_sync(runner.engine.schedules.remove("pulse")) is True
        time.sleep(1.5)  # (a tick claimed just before the removal is stored and run)
        flows = call(runner.store, "list_flows")
        _wait_for(runner, [f.flow_id for f in flows], FlowStatus.COMPLETED, within=20)
        ticks = []
        for record in flows:
            events = call(runner.store, "read_events", record.flow_id)
            fired = [e for e in events if e.type == "ScheduleFired"]
            assert [e.schedule for e in fired] == ["pulse"]
            ticks.append(fired[0].tick)
    assert len(ticks) == len(set(ticks)) >= 3  # one flow per tick
    assert sorted(ticks) == [min(ticks) + i for i in range(len(ticks))]  # none skipped


# Start fans out: "nap" sleeps 6 s while "Slow" (another branch) runs 3 s.
FORKED = (
    GraphBuilder("Forked")
    .start()
    .parallel()
    .branch()
    .sleep("nap", 6)
    .end()
    .branch()
    .node("work", "Slow", metadata={"sleep": 3})
    .end()
    .static_merge("Join")
    .end()
    .build()
)


def _scheduled(fleet: Fleet) -> list[Any]:
    """The ETA (countdown) tasks the workers hold now, by Celery's own inspection."""
    app = Celery(broker=fleet.redis_url)
    try:
        replies = app.control.inspect(timeout=1.5).scheduled() or {}
    finally:
        app.close()
    return [task for tasks in replies.values() for task in tasks]


def test_a_timer_queued_beside_running_work_is_no_eta_task(fleet: Fleet) -> None:
    fleet.start_workers(2)
    with fleet.runner(FORKED) as runner:
        flow_id = run_sync(runner.engine.start(FORKED, "in"))
        # nap's timer is committed while Slow still runs: it stays in the store.
        deadline = time.time() + 30
        while not any(isinstance(e, TimerSet) for e in call(runner.store, "read_events", flow_id)):
            assert time.time() < deadline, "nap set no timer in 30 s"
            time.sleep(0.02)
        assert call(runner.store, "get_flow", flow_id).status is FlowStatus.RUNNING  # Slow runs
        assert _scheduled(fleet) == []
        # Slow done, only the far timer left: the workers park the flow.
        _wait_for(runner, [flow_id], FlowStatus.PAUSED, within=20)
        assert call(runner.store, "get_flow", flow_id).lease_owner is None
        assert _scheduled(fleet) == []
        _wait_for(runner, [flow_id], FlowStatus.COMPLETED, within=20)  # a clock woke it
        events = list(call(runner.store, "read_events", flow_id))
        kinds = [e.type for e in events]
        assert (kinds.count("TimerSet"), kinds.count("TimerFired")) == (1, 1)
        wake_at = next(e for e in events if isinstance(e, TimerSet)).wake_at
        fired = next(e for e in events if e.type == "TimerFired")
        assert wake_at <= fired.ts <= wake_at + 3.0, (wake_at, fired.ts)
        assert fleet.runs()["Slow"] == 1
        snap = call(runner.store, "load_flow", flow_id)
        assert snap.flow.status is FlowStatus.COMPLETED
