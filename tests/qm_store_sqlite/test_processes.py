"""Real processes on one file: SIGKILL at seeded points then recovery in a new process,
two processes writing at once, pause in one process and resume in another."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlite_support import (
    finish,
    graph_named,
    registry,
    side_counts,
    start_worker,
    wait_for,
    worker,
)

from qm_store_sqlite import SQLiteStore
from quartermaster_engine import FlowRunner, InMemoryStore
from quartermaster_engine.context.node_execution import NodeStatus
from quartermaster_engine.stores.records import FlowStatus

CI = os.environ.get("CI") == "true"

#: (graph kind, size, executor runs of one flow)
GRAPHS = {"chain": ("chain", 300, 298), "fan": ("fan", 50, 52)}
#: Kill points per graph in CI; the default run takes the first two of each.
POINTS_PER_GRAPH = 12


def _crash_points() -> list[Any]:
    """Seeded kill points: ``in-flight`` hangs the k-th executor run and kills it there;
    ``anywhere`` kills 0-1 ms after the k-th line, wherever the process then is (an
    executor, a commit, the scheduler). k stays a dozen runs short of the end, so
    the flow is still running at the kill."""
    rng = random.Random(6)
    points = []
    for name, (_, _, runs) in GRAPHS.items():
        ks = rng.sample(range(1, runs - 12), POINTS_PER_GRAPH)
        chosen = []
        for i, k in enumerate(ks):
            mode = "in-flight" if i % 2 == 0 else "anywhere"
            delay = rng.uniform(0.0, 0.001)
            chosen.append(
                pytest.param(name, k, mode, delay, id=f"{name}-{mode}-{k}", marks=pytest.mark.slow)
            )
        points += chosen if CI else chosen[:2]
    return points


def _reference_output(kind: str, size: int, text: str) -> str:
    graph = graph_named(kind, size)
    result = FlowRunner(graph, registry(), store=InMemoryStore()).run(text)
    assert result.status is FlowStatus.COMPLETED
    return result.final_output


def _snapshot(db: Path, flow_id: UUID) -> Any:
    async def load() -> Any:
        store = SQLiteStore(db)
        try:
            return await store.load_flow(flow_id)
        finally:
            await store.close()

    return asyncio.run(load())


@pytest.mark.parametrize(("graph", "k", "mode", "delay"), _crash_points())
def test_sigkill_then_recover_in_a_new_process(
    tmp_path: Path, graph: str, k: int, mode: str, delay: float
) -> None:
    kind, size, runs = GRAPHS[graph]
    db, side, flow_id = tmp_path / "flows.db", tmp_path / "side.log", uuid4()
    args: dict[str, Any] = {"db": str(db), "side": str(side), "graph": kind, "size": size}
    stall = {"stall_at": k} if mode == "in-flight" else {}
    proc = start_worker("run", flow_id=str(flow_id), input="in", **args, **stall)
    try:

        def reached() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"the worker ended before the kill: {proc.communicate()}")
            return side.exists() and side.read_bytes().count(b"\n") >= k

        wait_for(reached, 120, f"line {k} of {side}")
        if mode == "anywhere":
            until = time.perf_counter() + delay
            while time.perf_counter() < until:
                pass
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    before = side_counts(side)

    recovered = worker("recover", flow_id=str(flow_id), **args)

    assert recovered["status"] == "completed", recovered
    assert recovered["final_output"] == _reference_output(kind, size, "in")
    counts = side_counts(side)
    names = [f"n{i}" for i in range(size - 2)] if kind == "chain" else None
    if names is None:
        names = ["Split", *(f"B{i}" for i in range(size)), "Join"]
    assert set(counts) == {f"{n} 1" for n in names}
    twice = [line for line, n in counts.items() if n == 2]
    assert all(n in (1, 2) for n in counts.values()), counts
    assert len(twice) <= 1, twice
    # Only what was running at the kill runs again: it ran before and after.
    assert all(before[line] == 1 for line in twice)
    if mode == "in-flight":
        assert len(twice) == 1
        assert sum(before.values()) == k
    snap = _snapshot(db, flow_id)
    finished = Counter(r.node_id for r in snap.records if r.status is NodeStatus.FINISHED)
    assert sum(finished.values()) == runs + 2  # the work nodes, Start and End
    # Every node, the join included, commits once. The join's executor may have run
    # twice only as the activation in flight at the kill (the one line in ``twice``).
    assert set(finished.values()) == {1}
    assert (snap.pending, snap.deliveries) == ([], [])
    assert snap.flow.status is FlowStatus.COMPLETED


def test_two_processes_run_fifty_flows_each_on_one_file(tmp_path: Path) -> None:
    db, go = tmp_path / "flows.db", tmp_path / "go"
    procs = [
        start_worker("many", db=str(db), go=str(go), count=50, prefix=p, graph="chain", size=12)
        for p in ("a", "b")
    ]
    try:
        wait_for(
            lambda: all((tmp_path / f"ready-{p}").exists() for p in ("a", "b")),
            60,
            "both workers to be ready",
        )
        go.touch()  # both start writing at once
        results = [finish(p)["results"] for p in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.communicate()
    expected = "n9(n8(n7(n6(n5(n4(n3(n2(n1(n0({}))))))))))"
    for prefix, summaries in zip(("a", "b"), results):
        assert [(s["status"], s["error"]) for s in summaries] == [("completed", None)] * 50
        assert [s["final_output"] for s in summaries] == [
            expected.format(f"{prefix}-{i}") for i in range(50)
        ]

    async def listed() -> list[Any]:
        store = SQLiteStore(db)
        try:
            return await store.list_flows()
        finally:
            await store.close()

    flows = asyncio.run(listed())
    assert len(flows) == 100
    assert {f.status for f in flows} == {FlowStatus.COMPLETED}
    assert sorted(f.input for f in flows) == sorted(f"{p}-{i}" for p in "ab" for i in range(50))


def test_pause_in_one_process_resume_in_another(tmp_path: Path) -> None:
    args = {"db": str(tmp_path / "flows.db"), "graph": "ask", "flow_id": str(uuid4())}
    paused = worker("pause", input="in", **args)
    assert (paused["status"], paused["waiting"]) == ("paused", ["Q"])
    done = worker("resume", answer="yes", **args)
    assert (done["status"], done["final_output"]) == ("completed", "After(answer=yes)")


COUNTER = """\
name: counter
nodes:
  - {name: Start, type: Start1}
  - name: Profile
    type: UserMemory1
    metadata: {memory_name: profile, initial_data: [{key: visits, value: "0"}]}
  - name: Count
    type: UpdateMemory1
    metadata:
      memory_name: profile
      memory_type: user
      variables: [{name: visits, expression: "int(current) + 1"}]
  - name: Read
    type: ReadMemory1
    metadata: {memory_name: profile, memory_type: user, variable_names: [visits]}
  - {name: End, type: End1}
edges:
  - {from: Start, to: Profile}
  - {from: Profile, to: Count}
  - {from: Count, to: Read}
  - {from: Read, to: End}
"""


def test_user_memory_nodes_count_across_qm_processes(tmp_path: Path) -> None:
    """The standard UserMemory1 / UpdateMemory1 / ReadMemory1 nodes, each run a new
    ``qm run`` process on one sqlite file: the agent's count goes on."""
    (tmp_path / "counter.yaml").write_text(COUNTER)
    (tmp_path / "qm.toml").write_text('[store]\nname = "sqlite"\npath = "flows.db"\n')
    qm = Path(sys.executable).with_name("qm")
    env = {**os.environ, "QM_LOAD_PLUGINS": "qm-store-sqlite,qm-nodes-std"}
    outputs = []
    for _ in range(3):
        proc = subprocess.run(
            [str(qm), "run", "counter.yaml", "--input", "hi", "--config", "qm.toml", "--json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        outputs.append((result["status"], result["final_output"]))
    assert outputs == [("completed", "1"), ("completed", "2"), ("completed", "3")]


FORK = """
import asyncio, os, sys
from sqlite_support import graph_named, registry
from qm_store_sqlite import SQLiteStore
from quartermaster_engine import FlowRunner

store = SQLiteStore(sys.argv[1])
runner = FlowRunner(graph_named("chain", 5), registry(), store=store)
print(asyncio.run(runner.arun("parent")).final_output, flush=True)
pid = os.fork()
if pid == 0:
    result = asyncio.run(runner.arun("child"))
    print(result.final_output, len(asyncio.run(store.list_flows())), flush=True)
    os._exit(0)
_, status = os.waitpid(pid, 0)
print(asyncio.run(runner.arun("parent again")).final_output, os.waitstatus_to_exitcode(status))
asyncio.run(store.close())
"""


def test_a_process_forked_after_using_the_store_uses_it_too(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", FORK, str(tmp_path / "flows.db")],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "n2(n1(n0(parent)))",
        "n2(n1(n0(child))) 2",
        "n2(n1(n0(parent again))) 0",
    ]


def test_a_script_that_never_closes_its_store_exits(tmp_path: Path) -> None:
    result = worker(
        "no_close", timeout=60, db=str(tmp_path / "flows.db"), graph="chain", size=5, input="x"
    )
    assert (result["status"], result["final_output"]) == ("completed", "n2(n1(n0(x)))")
