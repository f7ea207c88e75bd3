"""A blocking call abandoned by its timeout never keeps a plain script from exiting, and a
listener that blocks is reported instead of hanging run() silently (real processes)."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support import build, node_id

from quartermaster_engine import (
    ExecutionContext,
    FlowEvent,
    FlowRunner,
    NodeResult,
    SimpleNodeRegistry,
)
from quartermaster_engine.stores.records import FlowStatus

CORE_TESTS = Path(__file__).resolve().parent

SCRIPT = """\
import sys, threading
sys.path.insert(0, {tests!r})
from support import build
from quartermaster_engine import AsyncDispatcher, FlowRunner, SimpleNodeRegistry, SyncDispatcher

graph = build(
    {{"Start": "Start1", "A": {{"type": "hang", "timeout": 0.5}}, "End": "End1"}},
    [("Start", "A"), ("A", "End")],
)

def hang(ctx):
    threading.Event().wait()  # never returns

dispatcher = {{"sync": SyncDispatcher, "async": AsyncDispatcher}}[sys.argv[1]]()
result = FlowRunner(graph, SimpleNodeRegistry({{"hang": hang}}), dispatcher=dispatcher).run("x")
print(result.status.value, result.error, flush=True)
"""


@pytest.mark.parametrize("dispatcher", ["sync", "async"])
def test_a_script_whose_node_timed_out_on_a_call_that_never_returns_exits(
    tmp_path: Path, dispatcher: str
) -> None:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT.format(tests=str(CORE_TESTS)))
    try:
        done = subprocess.run(
            [sys.executable, str(script), dispatcher],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the script did not exit: {exc.stdout!r} {exc.stderr!r}")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"failed node 'A' ({node_id('A')}) timed out after 0.5 s (attempt 1 of 1)\n"
    )


LISTENER_SCRIPT = """\
import logging, sys, threading
sys.path.insert(0, {tests!r})
from support import build
from quartermaster_engine import FlowRunner, SimpleNodeRegistry

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s", stream=sys.stderr)
graph = build({{"Start": "Start1", "End": "End1"}}, [("Start", "End")])

def on_event(event):
    if event.type == "NodeStarted":
        threading.Event().wait()  # blocks forever

runner = FlowRunner(graph, SimpleNodeRegistry(), on_event=on_event, listener_budget=0.2)
runner.run("x", flow_id="00000000-0000-0000-0000-000000000001")
"""


def test_a_listener_that_blocks_forever_is_reported_while_it_blocks(tmp_path: Path) -> None:
    script = tmp_path / "listener.py"
    script.write_text(LISTENER_SCRIPT.format(tests=str(CORE_TESTS)))
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # blocks until the warning is written
        assert proc.poll() is None  # the flow still waits for the listener
    finally:
        proc.kill()
        proc.communicate()
    assert line == (
        "WARNING event listener on_event has been running for more than 0.2 s on "
        "NodeStarted of flow 00000000-0000-0000-0000-000000000001 and has not returned; "
        "listeners run inline, so the flow waits for it (FlowRunner(listener_budget=...))\n"
    )


def test_a_listener_over_its_budget_is_not_called_again_for_the_flow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    graph = build(
        {"Start": "Start1", "A": "step", "B": "step", "End": "End1"},
        [("Start", "A"), ("A", "B"), ("B", "End")],
    )
    seen: list[str] = []

    def on_event(event: FlowEvent) -> None:
        seen.append(event.type)
        if event.type == "NodeFinished" and len(seen) < 6:
            time.sleep(0.3)

    def step(ctx: ExecutionContext) -> NodeResult:
        return NodeResult(output_text=ctx.current_node.name)

    runner = FlowRunner(
        graph, SimpleNodeRegistry({"step": step}), on_event=on_event, listener_budget=0.1
    )
    with caplog.at_level(logging.WARNING, logger="quartermaster_engine.runner"):
        result = runner.run("x")
    assert (result.status, result.final_output) == (FlowStatus.COMPLETED, "B")
    # Muted after the NodeFinished of Start, the first call over its budget.
    assert seen == ["FlowStarted", "NodeStarted", "NodeFinished"]
    muted = [r.getMessage() for r in caplog.records if "not called again" in r.getMessage()]
    assert len(muted) == 1
    assert muted[0].startswith("event listener on_event took ")
    assert muted[0].endswith(
        f" s on NodeFinished of flow {result.flow_id}, over its budget of 0.1 s; "
        "it is not called again for the rest of this flow"
    )


def test_listener_budget_must_be_positive() -> None:
    graph: Any = build({"Start": "Start1", "End": "End1"}, [("Start", "End")])
    with pytest.raises(ValueError, match=r"^listener_budget must be a number of seconds > 0"):
        FlowRunner(graph, listener_budget=0)
    assert FlowRunner(graph, listener_budget=None).run("x").final_output == "x"
