"""The SIGKILL crash matrix for durable stores, shared by their test suites.

A 300-node chain and a 50-branch fan-out into an AwaitAll join run in a process
of their own, which SIGKILLs itself at a seeded executor call: ``before`` the
executor writes its line to a side file, ``after`` it, or from a ``timer``
thread a random instant later (which may fall inside a commit). Another process
then recovers the flow. Whatever the kill point: the output is exact, every node
that had committed keeps its single side-file line (it never runs again), every
other node runs exactly once more, and the join has exactly one record.

A store's worker script builds its store and calls `worker_main`; its test calls
`check_sigkill_then_recover` with a function that runs that script::

    def test_sigkill_then_recover(server, tmp_path, shape, seed):
        check_sigkill_then_recover(
            lambda: MyStore(server.url),
            lambda *args: subprocess.run([sys.executable, WORKER, server.url, *args], ...),
            shape, seed, tmp_path / "side.txt",
        )
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from quartermaster_engine.context.node_execution import NodeStatus
from quartermaster_engine.dispatchers.async_dispatcher import AsyncDispatcher
from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry
from quartermaster_engine.runner.flow_runner import FlowRunner
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_engine.testing.calls import call
from quartermaster_engine.testing.graphs import build_graph, chain_graph
from quartermaster_graph.models import GraphSpec

CHAIN_LENGTH = 300
BRANCHES = 50
SHAPES = ("chain", "fanout")

#: Runs one worker process with these arguments (strings) after the store's own.
RunWorker = Callable[..., "subprocess.CompletedProcess[str]"]


def graph_of(shape: str) -> GraphSpec:
    """The chain (``work`` nodes n0..n297) or the fan-out (B0..B49 into J)."""
    if shape == "chain":
        return chain_graph(CHAIN_LENGTH, "work")
    branches = [f"B{i}" for i in range(BRANCHES)]
    nodes: dict[str, Any] = {"Start": "Start1", **dict.fromkeys(branches, "work")}
    nodes["J"] = {"type": "work", "traverse_in": "AwaitAll"}
    nodes["End"] = "End1"
    edges = [("Start", b) for b in branches] + [(b, "J") for b in branches] + [("J", "End")]
    return build_graph(nodes, edges)


def expected_output(shape: str, flow_input: str = "in", length: int = CHAIN_LENGTH) -> str:
    """The final output of a completed flow of ``shape``."""
    if shape == "chain":
        out = flow_input
        for i in range(length - 2):
            out = f"n{i}({out})"
        return out
    joined = "\n".join(f"B{i}({flow_input})" for i in range(BRANCHES))
    return f"J({joined})"


def kill_point(shape: str, seed: int) -> tuple[int, str]:
    """(executor call to die at, how) for a seed."""
    rng = random.Random(f"{shape}-{seed}")
    calls = CHAIN_LENGTH - 2 if shape == "chain" else BRANCHES + 1
    return rng.randint(1, calls), rng.choice(["before", "after", "timer"])


def worker_main(store: Any, argv: list[str]) -> dict[str, Any]:
    """The worker process: ``run|recover SHAPE FLOW_ID SIDE_FILE [KILL_AT HOW SEED]``.

    Returns the flow's status and final output (print it as JSON)."""
    mode, shape, flow_id, side = argv[:4]
    kill_at, how, seed = (int(argv[4]), argv[5], int(argv[6])) if len(argv) > 4 else (0, "", 0)
    rng = random.Random(seed)
    calls = 0
    lock = threading.Lock()

    def kill() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def step(name: str) -> None:
        nonlocal calls
        with lock:
            calls += 1
            here = mode == "run" and calls == kill_at
        if here and how == "before":
            kill()
        with open(side, "a") as fh:  # O_APPEND: one short write per line
            fh.write(name + "\n")
        if here and how == "after":
            kill()
        if here and how == "timer":
            delay = rng.uniform(0, 0.003)
            timer = threading.Timer(delay, kill)
            timer.daemon = True
            timer.start()

    def work(ctx: Any) -> NodeResult:
        step(ctx.current_node.name)
        return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")

    async def work_async(ctx: Any) -> NodeResult:
        await asyncio.sleep(rng.uniform(0, 0.002))
        step(ctx.current_node.name)
        return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")

    if shape == "chain":
        runner = FlowRunner(graph_of(shape), SimpleNodeRegistry({"work": work}), store=store)
    else:
        runner = FlowRunner(
            graph_of(shape),
            SimpleNodeRegistry({"work": work_async}),
            store=store,
            dispatcher=AsyncDispatcher(max_concurrency=8),
        )
    fid = UUID(flow_id)
    result = runner.run("in", flow_id=fid) if mode == "run" else runner.recover(fid)
    return {"status": result.status.value, "final_output": result.final_output}


def _lines(path: Path) -> Counter[str]:
    return Counter(path.read_text().split()) if path.exists() else Counter()


def _names(graph: GraphSpec) -> dict[UUID, str]:
    return {node.id: node.name for node in graph.nodes}


def check_sigkill_then_recover(
    open_store: Callable[[], Any], run_worker: RunWorker, shape: str, seed: int, side: Path
) -> None:
    """Kill a worker at ``seed``'s point, recover in another, assert what must hold."""
    flow_id = uuid4()
    kill_at, how = kill_point(shape, seed)
    graph = graph_of(shape)
    names = _names(graph)
    work_nodes = [n.name for n in graph.nodes if n.type == "work"]

    crashed = run_worker("run", shape, str(flow_id), str(side), str(kill_at), how, str(seed))
    # A timer may fire only after the flow ended (exit 0); otherwise the kill is what ended it.
    assert crashed.returncode in (-9, 0), crashed.stderr
    store = open_store()
    try:
        before = call(store, "load_flow", flow_id)
        committed = {names[r.node_id] for r in before.records if r.status is NodeStatus.FINISHED}
        lines_before = _lines(side)

        recovered = run_worker("recover", shape, str(flow_id), str(side))
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
            names[r.node_id] for r in snap.records if r.status is NodeStatus.FINISHED
        )
        assert finished == Counter({n.name: 1 for n in graph.nodes})
        assert (snap.pending, snap.deliveries) == ([], [])
        if shape == "fanout":
            assert finished["J"] == 1
            assert lines_after["J"] == (1 if "J" in committed else lines_before["J"] + 1)
    finally:
        call(store, "close")
