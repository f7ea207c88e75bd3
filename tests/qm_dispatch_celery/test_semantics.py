"""The local dispatchers' semantics, with the celery dispatcher against real workers:
the same records and output as a local run (joins once per visit, a dead path, a
loop), retries as countdowns, SKIP and CONTINUE, timeouts, pause and resume from
another process, stop, several flows at once, a worker lacking a node type."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from celery_nodes import EXECUTORS
from celery_support import Fleet

from qm_dispatch_celery import CeleryDispatcher, CelerySettings
from quartermaster_engine import FlowRunner, FlowStatus, InMemoryStore, SimpleNodeRegistry
from quartermaster_engine.events import FlowEvent
from quartermaster_engine.testing import build_graph, call, chain_graph
from quartermaster_engine.testing.graphs import branching_graph, name_id

BRANCHING = branching_graph()


def _records(snap: Any) -> Counter[tuple[Any, ...]]:
    names = {n.id: n.name for n in snap.flow.graph.nodes}
    return Counter(
        (names[r.node_id], r.visit, r.attempt, r.status.value, r.result) for r in snap.records
    )


def _local(graph: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """The flow run in this process on the in-memory store: the reference."""
    monkeypatch.setenv("QM_TEST_SIDE", str(tmp_path / "local-side.log"))
    store = InMemoryStore()
    result = FlowRunner(graph, SimpleNodeRegistry(EXECUTORS), store=store).run("go")
    return result, call(store, "load_flow", result.flow_id)


def test_joins_dead_paths_and_loops_end_as_a_local_run_does(
    fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, ref_snap = _local(BRANCHING, tmp_path, monkeypatch)
    fleet.start_workers(2, concurrency=2)
    with fleet.runner(BRANCHING) as runner:
        result = runner.run("go")
        snap = call(runner.store, "load_flow", result.flow_id)
    assert result.status is FlowStatus.COMPLETED
    assert result.final_output == reference.final_output
    assert _records(snap) == _records(ref_snap)
    # The join after the fan-out ran once per visit of the loop; R's path stayed dead.
    assert fleet.runs() == {
        "A": 1, "B": 1, "C": 1, "J": 2, "D": 2, "L": 2, "M": 2, "Check": 2,
    }  # fmt: skip


def test_retries_wait_their_delay_as_countdowns(fleet: Fleet) -> None:
    graph = build_graph(
        {
            "Start": "Start1",
            "F": {"type": "flaky", "error_handling": "Retry", "max_retries": 3, "retry_delay": 0.5},
            "End": "End1",
        },
        [("Start", "F"), ("F", "End")],
    )
    fleet.start_worker(concurrency=2)
    with fleet.runner(graph) as runner:
        result = runner.run("x")
    assert result.status is FlowStatus.COMPLETED
    assert result.final_output == "third time"
    lines = [line for line in fleet.lines() if line[3] == "F"]
    assert [(line[4], line[5]) for line in lines] == [("1", "1"), ("1", "2"), ("1", "3")]
    # Each retry waited at least its delay (0.5 s, doubled per attempt): the task
    # was published with that countdown, no worker slept on it.
    stamps = [float(line[6]) for line in lines]
    assert stamps[1] - stamps[0] >= 0.5
    assert stamps[2] - stamps[1] >= 1.0


@pytest.mark.parametrize(
    ("strategy", "status", "after"),
    [("Skip", FlowStatus.COMPLETED, 1), ("Continue", FlowStatus.FAILED, 1),
     ("Stop", FlowStatus.FAILED, 0)],
)  # fmt: skip
def test_error_strategies(
    fleet: Fleet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    strategy: str,
    status: FlowStatus,
    after: int,
) -> None:
    graph = build_graph(
        {
            "Start": "Start1",
            "F": {"type": "fail", "error_handling": strategy},
            "After": "work",
            "End": "End1",
        },
        [("Start", "F"), ("F", "After"), ("After", "End")],
    )
    reference, ref_snap = _local(graph, tmp_path, monkeypatch)
    fleet.start_worker(concurrency=1)
    with fleet.runner(graph) as runner:
        result = runner.run("go")
        snap = call(runner.store, "load_flow", result.flow_id)
    assert result.status is status
    assert (result.status, result.final_output, result.error) == (
        reference.status,
        reference.final_output,
        reference.error,
    )
    assert _records(snap) == _records(ref_snap)
    assert fleet.runs()["After"] == after


def test_a_timeout_fails_the_node_by_name(fleet: Fleet) -> None:
    graph = build_graph(
        {
            "Start": "Start1",
            "H": {"type": "hang", "timeout": 0.3, "metadata": {"seconds": 2}},
            "End": "End1",
        },
        [("Start", "H"), ("H", "End")],
    )
    fleet.start_worker(concurrency=1)
    with fleet.runner(graph) as runner:
        result = runner.run("x")
    assert result.status is FlowStatus.FAILED
    assert result.error is not None
    assert f"node 'H' ({name_id('H')}) timed out after 0.3 s (attempt 1 of 1)" in result.error


ASK = build_graph(
    {"Start": "Start1", "Ask": "ask", "End": "End1"}, [("Start", "Ask"), ("Ask", "End")]
)


def test_pause_here_resume_from_another_process(fleet: Fleet) -> None:
    fleet.start_worker(concurrency=1)
    with fleet.runner(ASK) as runner:
        paused = runner.run("x")
    assert paused.status is FlowStatus.PAUSED
    assert [(w.node_name, w.prompt) for w in paused.waiting] == [("Ask", "Name?")]
    resumed = fleet.qm("resume", str(paused.flow_id), "--input", "Bob", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert '"final_output": "hello Bob"' in resumed.stdout
    assert '"status": "completed"' in resumed.stdout
    assert fleet.runs() == {"Ask": 2}


@pytest.mark.parametrize("node_type", ["hang", "ahang"], ids=["def", "async-def"])
def test_stop_reaches_the_running_node_and_starts_nothing(fleet: Fleet, node_type: str) -> None:
    graph = build_graph(
        {"Start": "Start1", "H": node_type, "After": "work"}, [("Start", "H"), ("H", "After")]
    )
    fleet.start_worker(concurrency=1)
    results: list[Any] = []
    with fleet.runner(graph) as runner:
        thread = threading.Thread(target=lambda: results.append(runner.run("x")))
        thread.start()
        started = fleet.wait_for_line("started", "H")
        runner.stop(uuid.UUID(started[2]))
        thread.join(30)
        fleet.wait_for_line("cancelled", "H", timeout=10)
    assert results[0].status is FlowStatus.STOPPED
    time.sleep(0.5)
    assert fleet.runs() == {}
    assert fleet.runs("cancelled") == {"H": 1}


def test_several_flows_at_once_keep_their_own_work(fleet: Fleet) -> None:
    graph = chain_graph(5, "work")
    fleet.start_workers(2, concurrency=2)
    with fleet.runner(graph) as runner:

        async def many() -> list[Any]:
            return list(await asyncio.gather(*(runner.arun(f"f{i}") for i in range(5))))

        results = asyncio.run(many())
    assert [r.final_output for r in results] == [f"n2(n1(n0(f{i})))" for i in range(5)]


def test_run_async_yields_the_workers_events_in_order(fleet: Fleet) -> None:
    fleet.start_worker(concurrency=1)
    with fleet.runner(chain_graph(4, "work")) as runner:

        async def collect() -> list[FlowEvent]:
            return [event async for event in runner.run_async("x")]

        events = asyncio.run(collect())
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [(e.type, getattr(e, "node_name", None)) for e in events if e.type != "NodeFinished"][
        :3
    ] == [("FlowStarted", None), ("NodeStarted", "Start"), ("NodeStarted", "n0")]
    assert events[-1].type == "FlowFinished"


def test_a_worker_lacking_a_node_type_hands_it_to_one_that_has_it(fleet: Fleet) -> None:
    graph = build_graph(
        {"Start": "Start1", "A": "work", "J": "join", "End": "End1"},
        [("Start", "A"), ("A", "J"), ("J", "End")],
    )
    fleet.start_worker(concurrency=1, QM_TEST_ONLY_TYPES="work")
    with fleet.runner(graph) as runner:
        fid = runner.submit("x")
        deadline = time.monotonic() + 30
        while "refused activation" not in fleet.logs[0].read_text():
            assert time.monotonic() < deadline, fleet.logs[0].read_text()
            time.sleep(0.05)
        assert call(runner.store, "get_flow", fid).status is FlowStatus.RUNNING
        fleet.start_worker(concurrency=1)
        fleet.wait_status(runner.store, fid, "completed")
        result = runner.get_result(fid)
    assert result.final_output == "A(x)"
    log = fleet.logs[0].read_text()
    assert (
        f"of flow {fid}: no executor for node type 'join' (node 'J' ({name_id('J')})); "
        "`qm plugins` lists the installed ones; handing it back for a worker that has it"
    ) in log
    assert fleet.runs() == {"A": 1, "J": 1}
    assert fleet.worker_of(int(fleet.wait_for_line("ran", "J")[1])) == 1


def test_the_in_memory_store_is_refused(redis_server: Any) -> None:
    dispatcher = CeleryDispatcher(CelerySettings(broker_url=redis_server.url))
    with pytest.raises(TypeError) as caught:
        FlowRunner(chain_graph(3), store=InMemoryStore(), dispatcher=dispatcher)
    assert str(caught.value) == (
        "dispatcher CeleryDispatcher runs flows on workers in other processes: it needs a "
        "durable store they share (sqlite, redis, postgres); InMemoryStore keeps flows in this "
        "process only"
    )
    dispatcher.shutdown()
    dispatcher.shutdown()
