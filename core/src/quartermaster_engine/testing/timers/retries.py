"""A retry delay across a SIGKILL, on test clocks: the second attempt runs at the
original time, neither restarted nor at once."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from quartermaster_engine.events import (
    FlowEvent,
)
from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry
from quartermaster_engine.runner.flow_runner import FlowRunner
from quartermaster_engine.testing.timers.sleep import RunWorker
from quartermaster_graph import GraphBuilder, GraphSpec

#: The retry test's clocks: the first process at T0, the recovering one a minute on.
RETRY_T0 = 1893456000.0
RETRY_DELAY = 600.0


def retry_graph() -> GraphSpec:
    """``Start -> flaky (Retry, 2 retries, retry_delay 600 s) -> End``."""
    return (
        GraphBuilder("Flaky")
        .start()
        .node("flaky", "flaky", error_handling="Retry", max_retries=2, retry_delay=RETRY_DELAY)
        .end()
        .build()
    )


def retry_worker_main(store: Any, argv: list[str]) -> dict[str, Any]:
    """A retrying flow on a `TestClock`: ``retry-run|retry-recover FLOW_ID SIDE_FILE``.
    ``retry-run`` (clock at `RETRY_T0`, standing still) dies (SIGKILL) once the
    failed first attempt and its retry timer are committed (NodeRetrying);
    ``retry-recover`` (clock a minute later, skipping) recovers the flow."""
    from quartermaster_engine.testing.clock import TestClock

    mode, flow_id, side = argv[:3]
    run = mode == "retry-run"
    clock = TestClock(RETRY_T0 if run else RETRY_T0 + 60, skip=not run)

    def flaky(ctx: Any) -> NodeResult:
        with open(side, "a") as fh:
            fh.write(f"attempt {ctx.attempt} at {clock.now() - RETRY_T0:.0f}\n")
        if ctx.attempt == 1:
            return NodeResult(success=False, error="not yet")
        return NodeResult(output_text="done")

    def die_once_retrying(event: FlowEvent) -> None:
        if run and event.type == "NodeRetrying":
            os.kill(os.getpid(), signal.SIGKILL)

    runner = FlowRunner(
        retry_graph(),
        SimpleNodeRegistry({"flaky": flaky}),
        store=store,
        clock=clock,
        on_event=die_once_retrying,
    )
    fid = UUID(flow_id)
    result = runner.run("in", flow_id=fid) if run else runner.recover(fid)
    return {"status": result.status.value, "final_output": result.final_output}


def check_retry_delay_survives_sigkill(run_worker: RunWorker, side: Path) -> None:
    """A 10-minute retry delay, with test clocks: the process is killed during the
    delay, another (its clock a minute later) recovers the flow: the second attempt
    runs at the original time (T0 + 600 s), not restarted (T0 + 660) nor at once."""
    flow_id = uuid4()
    crashed = run_worker("retry-run", str(flow_id), str(side))
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    recovered = run_worker("retry-recover", str(flow_id), str(side))
    assert recovered.returncode == 0, recovered.stderr
    assert recovered.stdout.strip().splitlines()[-1] == (
        '{"status": "completed", "final_output": "done"}'
    )
    assert side.read_text().splitlines() == ["attempt 1 at 0", "attempt 2 at 600"]
