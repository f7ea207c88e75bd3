"""Durable sleep across a SIGKILL.

A worker process runs ``Start -> before -> nap (Sleep1, SECONDS) -> after -> End``
and SIGKILLs itself as soon as the commit that parks ``nap`` succeeded (its
TimerSet event). Another process recovers the flow. Then: the sleep is not
restarted (one TimerSet in the log, ``nap`` recorded sleeping once and finished
once), ``before`` never runs again, and the flow wakes no earlier than the
original wake time and ends no later than a second after it (not at recover
time + the duration).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from quartermaster_engine.context.node_execution import NodeStatus
from quartermaster_engine.events import (
    FlowEvent,
    FlowFinished,
    TimerFired,
    TimerSet,
)
from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry
from quartermaster_engine.runner.flow_runner import FlowRunner
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_engine.testing.calls import call
from quartermaster_graph import GraphBuilder, GraphSpec

#: The sleep the crash test parks in (the issue's figure).
SLEEP_SECONDS = 2.0

RunWorker = Callable[..., Any]


def sleep_graph(seconds: float = SLEEP_SECONDS) -> GraphSpec:
    """``Start -> before -> nap (Sleep1) -> after -> End`` (work nodes ``work``)."""
    return (
        GraphBuilder("Nap")
        .start()
        .node("work", "before")
        .sleep("nap", seconds)
        .node("work", "after")
        .end()
        .build()
    )


def sleep_worker_main(store: Any, argv: list[str]) -> dict[str, Any]:
    """The worker process: ``run|recover FLOW_ID SIDE_FILE [SECONDS]``. ``run`` dies
    (SIGKILL) once ``nap``'s TimerSet is committed; ``recover`` returns the result."""
    mode, flow_id, side = argv[:3]
    seconds = float(argv[3]) if len(argv) > 3 else SLEEP_SECONDS

    def work(ctx: Any) -> NodeResult:
        with open(side, "a") as fh:  # O_APPEND: one short write per line
            fh.write(ctx.current_node.name + "\n")
        return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")

    def die_once_parked(event: FlowEvent) -> None:
        if isinstance(event, TimerSet) and mode == "run":
            os.kill(os.getpid(), signal.SIGKILL)

    runner = FlowRunner(
        sleep_graph(seconds),
        SimpleNodeRegistry({"work": work}),
        store=store,
        on_event=die_once_parked,
    )
    fid = UUID(flow_id)
    result = runner.run("in", flow_id=fid) if mode == "run" else runner.recover(fid)
    return {"status": result.status.value, "final_output": result.final_output}


def check_sigkill_during_sleep(
    open_store: Callable[[], Any],
    run_worker: RunWorker,
    side: Path,
    seconds: float = SLEEP_SECONDS,
) -> dict[str, float]:
    """Kill a worker while its flow sleeps, recover in another, assert what must hold.
    Returns the figures measured: ``late`` (flow end minus wake time, seconds) and
    ``recovered_after`` (when recovery started, seconds after the sleep began)."""
    flow_id = uuid4()
    crashed = run_worker("run", str(flow_id), str(side), str(seconds))
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    recover_started = time.time()
    recovered = run_worker("recover", str(flow_id), str(side), str(seconds))
    assert recovered.returncode == 0, recovered.stderr
    assert recovered.stdout.strip().splitlines()[-1] == (
        '{"status": "completed", "final_output": "after(before(in))"}'
    )
    assert Counter(side.read_text().split()) == Counter({"before": 1, "after": 1})
    store = open_store()
    try:
        events = list(call(store, "read_events", flow_id))
        set_ = [e for e in events if isinstance(e, TimerSet)]
        fired = [e for e in events if isinstance(e, TimerFired)]
        ended = [e for e in events if isinstance(e, FlowFinished)]
        assert (len(set_), len(fired), len(ended)) == (1, 1, 1), [e.type for e in events]
        wake_at = set_[0].wake_at
        assert fired[0].wake_at == wake_at
        # The sleep was not restarted: it began before the crash, ``seconds`` before
        # its wake time, and the flow woke at that time, not recover time + seconds.
        assert abs((wake_at - seconds) - set_[0].ts) < 0.5
        assert wake_at <= fired[0].ts, (wake_at, fired[0].ts)
        assert ended[0].ts <= wake_at + 1.0, (wake_at, ended[0].ts)
        snap = call(store, "load_flow", flow_id)
        assert snap.flow.status is FlowStatus.COMPLETED
        nap = next(n.id for n in snap.flow.graph.nodes if n.name == "nap")
        statuses = [r.status for r in snap.records if r.node_id == nap]
        assert statuses == [NodeStatus.SLEEPING, NodeStatus.FINISHED]
        return {"late": ended[0].ts - wake_at, "recovered_after": recover_started - set_[0].ts}
    finally:
        call(store, "close")
