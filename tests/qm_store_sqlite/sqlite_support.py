"""Graphs, executors and a subprocess runner shared by the SQLite store tests and
their worker script (``sqlite_worker.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from quartermaster_engine import ExecutionContext, NodeResult, SimpleNodeRegistry
from quartermaster_engine.testing import build_graph, chain_graph
from quartermaster_graph import GraphSpec

WORKER = Path(__file__).with_name("sqlite_worker.py")

#: Branches of the fan-out/fan-in graph.
FAN_WIDTH = 50


def fan_graph(width: int = FAN_WIDTH) -> GraphSpec:
    """Start -> Split -> B0..B{width-1} -> Join (AwaitAll) -> End."""
    nodes: dict[str, Any] = {"Start": "Start1", "Split": "work"}
    edges: list[tuple[str, ...]] = [("Start", "Split")]
    for i in range(width):
        nodes[f"B{i}"] = "work"
        edges += [("Split", f"B{i}"), (f"B{i}", "Join")]
    nodes["Join"] = {"type": "work", "traverse_in": "AwaitAll"}
    nodes["End"] = "End1"
    edges.append(("Join", "End"))
    return build_graph(nodes, edges)


def graph_named(kind: str, size: int) -> GraphSpec:
    if kind == "chain":
        return chain_graph(size, "work")
    if kind == "fan":
        return fan_graph(size)
    if kind == "ask":
        return build_graph(
            {"Start": "Start1", "Q": "ask", "After": "work", "End": "End1"},
            [("Start", "Q"), ("Q", "After"), ("After", "End")],
        )
    raise ValueError(f"unknown graph kind {kind!r}")


def registry(side: Path | None = None, stall_at: int | None = None) -> SimpleNodeRegistry:
    """``work`` appends "<node> <visit>" to ``side`` (one line per run) and returns
    "<node>(<input>)"; its ``stall_at``-th run hangs after writing its line, so a
    kill lands while it is in flight. ``ask`` waits for a person."""
    runs = 0
    fd = os.open(side, os.O_WRONLY | os.O_APPEND | os.O_CREAT) if side is not None else None

    def work(ctx: ExecutionContext) -> NodeResult:
        nonlocal runs
        if fd is not None:
            os.write(fd, f"{ctx.current_node.name} {ctx.visit}\n".encode())
        runs += 1
        if runs == stall_at:
            time.sleep(120)
        return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")

    def ask(ctx: ExecutionContext) -> NodeResult:
        if ctx.user_input is None:
            return NodeResult(wait_for_user=True, user_prompt="Approve?", user_options=["yes"])
        return NodeResult(output_text=f"answer={ctx.user_input}")

    return SimpleNodeRegistry({"work": work, "ask": ask})


def side_counts(side: Path) -> Counter[str]:
    """How many times each "<node> <visit>" line was written."""
    if not side.exists():
        return Counter()
    return Counter(line for line in side.read_text().splitlines() if line)


def worker(command: str, timeout: float = 120.0, **args: Any) -> dict[str, Any]:
    """Run the worker script in a new process and return what it printed (JSON)."""
    proc = subprocess.run(
        [sys.executable, str(WORKER), command, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"worker {command} exited with {proc.returncode}\nstdout:\n{proc.stdout}\n"
            f"stderr:\n{proc.stderr}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def start_worker(command: str, **args: Any) -> subprocess.Popen[str]:
    """Start the worker script without waiting for it."""
    return subprocess.Popen(
        [sys.executable, str(WORKER), command, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120.0) -> dict[str, Any]:
    """Wait for a started worker and return what it printed (JSON)."""
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"worker exited with {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}"
        )
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    """Poll ``predicate`` until it is true; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.001)
