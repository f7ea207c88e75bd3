"""Stress: the join of a wide fan-out runs exactly once per flow, with every branch's
output, however the worker threads interleave (0.1.5 ran it 2 to 62 times)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest
from thread_support import fan_graph

from qm_dispatch_thread import ThreadDispatcher
from quartermaster_engine import (
    ExecutionContext,
    FlowEvent,
    FlowFinished,
    FlowRunner,
    FlowStarted,
    FlowStatus,
    NodeFinished,
    NodeResult,
    NodeStarted,
    SimpleNodeRegistry,
)

RUNS = 200
WIDTH = 100


@pytest.mark.slow
def test_200_runs_of_a_100_branch_fan_out_join_exactly_once() -> None:
    rng = random.Random(20240611)
    # Per run and branch, a sleep of 0 to 1 ms, drawn up front so executors only read.
    delays = [[rng.random() / 1000 for _ in range(WIDTH)] for _ in range(RUNS)]
    branch_calls: Counter[str] = Counter()
    joins: list[tuple[str, str, list[str]]] = []
    lock = threading.Lock()

    def branch(ctx: ExecutionContext) -> NodeResult:
        run = int(ctx.input_text.removeprefix("run"))
        name = ctx.current_node.name
        time.sleep(delays[run][int(name[1:])])
        with lock:
            branch_calls[f"{ctx.input_text}/{name}"] += 1
        return NodeResult(
            output_text=f"{ctx.input_text}:{name}", data={"memory_updates": {name: run}}
        )

    def join(ctx: ExecutionContext) -> str:
        run = ctx.input_text.split(":", 1)[0]
        with lock:
            joins.append((run, ctx.input_text, sorted(ctx.memory)))
        return f"{run} joined"

    events: list[FlowEvent] = []
    dispatcher = ThreadDispatcher(max_workers=8)
    runner = FlowRunner(
        fan_graph(WIDTH),
        SimpleNodeRegistry({"branch": branch, "join": join}),
        dispatcher=dispatcher,
        on_event=events.append,
    )
    try:
        for run in range(RUNS):
            events.clear()
            result = runner.run(f"run{run}")
            assert result.status is FlowStatus.COMPLETED, result.error
            assert result.success is True
            assert result.final_output == f"run{run} joined"
            assert [e.seq for e in events] == list(range(1, 2 * (WIDTH + 3) + 3))
            kinds = Counter(type(e) for e in events)
            assert kinds == {
                FlowStarted: 1,
                NodeStarted: WIDTH + 3,
                NodeFinished: WIDTH + 3,
                FlowFinished: 1,
            }
    finally:
        dispatcher.shutdown()

    keys = sorted(f"b{i}" for i in range(WIDTH))
    assert joins == [
        (
            f"run{run}",
            "\n".join(f"run{run}:b{i}" for i in range(WIDTH)),
            keys,
        )
        for run in range(RUNS)
    ]
    assert branch_calls == Counter({f"run{r}/b{i}": 1 for r in range(RUNS) for i in range(WIDTH)})
