"""SIGKILL a process mid-flow at seeded points; recover in a new process.

A 300-node chain and a 50-branch fan-out into an AwaitAll join. Whatever the
kill point: the recovered flow's output is exact, every node that had
committed keeps its single side-file line (it never runs again), every other
node runs exactly once more, and the join has exactly one record.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from qm_pg_support import PostgresServer, env_ci, store_for, unique_schema
from qm_pg_worker import BRANCHES, CHAIN_LENGTH, chain, expected_output, fanout

from quartermaster_engine.context.node_execution import NodeStatus
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_engine.testing import call

WORKER = Path(__file__).with_name("qm_pg_worker.py")
#: CI runs 24 kill points in all; a local run a quick subset.
SEEDS = range(12) if env_ci() else range(3)


def _worker(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(WORKER), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _lines(path: Path) -> Counter[str]:
    return Counter(path.read_text().split()) if path.exists() else Counter()


def _kill_point(shape: str, seed: int) -> tuple[int, str]:
    rng = random.Random(f"{shape}-{seed}")
    calls = CHAIN_LENGTH - 2 if shape == "chain" else BRANCHES + 1
    return rng.randint(1, calls), rng.choice(["before", "after", "timer"])


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["chain", "fanout"])
@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_then_recover_in_a_new_process(
    pg_server: PostgresServer, tmp_path: Path, shape: str, seed: int
) -> None:
    schema, flow_id, side = unique_schema(), uuid4(), tmp_path / "side.txt"
    kill_at, how = _kill_point(shape, seed)
    graph = chain() if shape == "chain" else fanout()
    work_nodes = [n.name for n in graph.nodes if n.type == "work"]

    crashed = _worker("run", shape, pg_server.url, schema, flow_id, side, kill_at, how, seed)
    # A timer may fire only after the flow ended (exit 0); otherwise the kill is what ended it.
    assert crashed.returncode in (-9, 0), crashed.stderr
    store = store_for(pg_server, schema)
    try:
        before = call(store, "load_flow", flow_id)
        committed = {
            _name(graph, r.node_id) for r in before.records if r.status is NodeStatus.FINISHED
        }
        lines_before = _lines(side)

        recovered = _worker("recover", shape, pg_server.url, schema, flow_id, side)
        assert recovered.returncode == 0, recovered.stderr
        assert json.loads(recovered.stdout) == {
            "status": "completed",
            "final_output": expected_output(shape),
        }
        lines_after = _lines(side)
        for name in work_nodes:
            ran_again = 0 if name in committed else 1
            assert lines_after[name] == lines_before[name] + ran_again, (name, kill_at, how)
            assert lines_before[name] <= 1
        assert set(lines_after) == set(work_nodes)

        snap = call(store, "load_flow", flow_id)
        assert snap.flow.status is FlowStatus.COMPLETED
        finished = Counter(
            _name(graph, r.node_id) for r in snap.records if r.status is NodeStatus.FINISHED
        )
        assert finished == Counter({n.name: 1 for n in graph.nodes})
        assert (snap.pending, snap.deliveries) == ([], [])
        if shape == "fanout":
            assert finished["J"] == 1
            assert lines_after["J"] == (1 if "J" in committed else lines_before["J"] + 1)
    finally:
        call(store, "close")


def _name(graph: object, node_id: UUID) -> str:
    for node in graph.nodes:  # type: ignore[attr-defined]
        if node.id == node_id:
            return str(node.name)
    raise KeyError(node_id)
