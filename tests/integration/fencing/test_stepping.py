"""A flow advanced one activation at a time, alternating between two processes
that hold only the store: the same records, output and events as `run()`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

from fencing_support import stored
from step_worker import registry

from quartermaster_engine import FlowRunner, FlowStatus, InMemoryStore
from quartermaster_engine.runner.stepper import FlowStepper
from quartermaster_engine.testing import call
from quartermaster_engine.testing.graphs import branching_graph

WORKER = Path(__file__).with_name("step_worker.py")


class Stepper:
    """A step_worker process driven line by line."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps({"store": spec})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(WORKER.parent)},
        )

    def ask(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())  # type: ignore[no-any-return]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0


def _records(snap: Any) -> list[tuple[Any, ...]]:
    names = {n.id: n.name for n in snap.flow.graph.nodes}
    return [(names[r.node_id], r.visit, r.attempt, r.status.value, r.result) for r in snap.records]


def _events(events: list[Any]) -> list[tuple[Any, ...]]:
    return [(e.seq, e.type, getattr(e, "node_id", None)) for e in events]


def test_two_processes_taking_turns_end_like_one_run(store_spec: dict[str, Any]) -> None:
    reference_store = InMemoryStore()
    reference = FlowRunner(branching_graph(), registry(), store=reference_store).run("go")
    assert reference.status is FlowStatus.COMPLETED
    ref_snap = call(reference_store, "load_flow", reference.flow_id)
    ref_events = call(reference_store, "read_events", reference.flow_id)

    workers = [Stepper(store_spec), Stepper(store_spec)]
    try:
        fid = workers[0].ask("submit go")["flow_id"]
        steps: list[dict[str, Any]] = []
        while not steps or steps[-1]["status"] == "running":
            steps.append(workers[len(steps) % 2].ask(f"step {fid}"))
            assert len(steps) < 100
    finally:
        for worker in workers:
            worker.close()

    assert steps[-1]["status"] == "completed"
    # The activations ran in the order the single run ran them.
    assert [s["ran"] for s in steps] == [r[0] for r in _records(ref_snap)]
    snap, events = stored(store_spec, fid)
    assert snap.flow.status is FlowStatus.COMPLETED
    assert snap.flow.final_output == reference.final_output
    assert _records(snap) == _records(ref_snap)
    assert _events(events) == _events(ref_events)
    # One step per activation, and both processes took part.
    assert len(steps) == len(ref_snap.records)
    assert set(snap.memory.values()) == {p.pid for p in (w.proc for w in workers)}


def test_a_stepper_reads_only_what_changed_since_its_last_step() -> None:
    asyncio.run(_catch_up())


async def _catch_up() -> None:
    store = InMemoryStore()
    runner = FlowRunner(branching_graph(), registry(), store=store)
    stepper = FlowStepper(runner)
    fid: UUID = await runner.asubmit("go")
    read: list[int | None] = []
    while (result := await stepper.step(fid)).status is FlowStatus.RUNNING:
        read.append(stepper.records_read(fid))
    assert result.result is not None
    assert result.result.success
    assert stepper.records_read(fid) is None  # forgotten once the flow ended
    # Before step n the stepper had read the n - 1 records committed so far, so
    # each step read one new record: the one the step before it committed.
    assert read == list(range(len(read)))
