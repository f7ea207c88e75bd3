"""A flow in a process of its own, for the crash and multi-process tests.

    python qm_redis_crash_worker.py run|recover chain|fanout URL PREFIX FLOW_ID SIDE_FILE \
        [KILL_AT HOW SEED]

Executors append their node's name to SIDE_FILE. In ``run`` mode the process
SIGKILLs itself at the KILL_AT-th executor call: ``before`` it writes its
line, ``after`` it, or from a ``timer`` thread a random instant later (which
may fall inside a commit). Prints the flow's result as JSON when it ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import threading
import time
from typing import Any
from uuid import UUID

from qm_store_redis import RedisStore
from quartermaster_engine import AsyncDispatcher, FlowRunner
from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry
from quartermaster_engine.testing import build_graph, chain_graph
from quartermaster_graph import GraphSpec

CHAIN_LENGTH = 300
BRANCHES = 50


def chain() -> GraphSpec:
    return chain_graph(CHAIN_LENGTH, "work")


def fanout() -> GraphSpec:
    branches = [f"B{i}" for i in range(BRANCHES)]
    nodes: dict[str, Any] = {"Start": "Start1", **dict.fromkeys(branches, "work")}
    nodes["J"] = {"type": "work", "traverse_in": "AwaitAll"}
    nodes["End"] = "End1"
    edges = [("Start", b) for b in branches] + [(b, "J") for b in branches] + [("J", "End")]
    return build_graph(nodes, edges)


def expected_output(shape: str) -> str:
    if shape == "chain":
        out = "in"
        for i in range(CHAIN_LENGTH - 2):
            out = f"n{i}({out})"
        return out
    joined = "\n".join(f"B{i}(in)" for i in range(BRANCHES))
    return f"J({joined})"


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str]) -> None:
    mode, shape, url, prefix, flow_id, side = argv[:6]
    kill_at, how, seed = (int(argv[6]), argv[7], int(argv[8])) if len(argv) > 6 else (0, "", 0)
    rng = random.Random(seed)
    calls = 0
    lock = threading.Lock()

    def step(name: str) -> None:
        nonlocal calls
        with lock:
            calls += 1
            here = mode == "run" and calls == kill_at
        if here and how == "before":
            _kill()
        with open(side, "a") as fh:  # O_APPEND: one short write per line
            fh.write(name + "\n")
        if here and how == "after":
            _kill()
        if here and how == "timer":
            delay = rng.uniform(0, 0.003)
            threading.Thread(target=lambda: (time.sleep(delay), _kill()), daemon=True).start()

    def work(ctx: Any) -> NodeResult:
        step(ctx.current_node.name)
        return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")

    async def work_async(ctx: Any) -> NodeResult:
        await asyncio.sleep(rng.uniform(0, 0.002))
        step(ctx.current_node.name)
        return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")

    store = RedisStore(url, key_prefix=prefix)
    if shape == "chain":
        runner = FlowRunner(chain(), SimpleNodeRegistry({"work": work}), store=store)
    else:
        runner = FlowRunner(
            fanout(),
            SimpleNodeRegistry({"work": work_async}),
            store=store,
            dispatcher=AsyncDispatcher(max_concurrency=8),
        )
    fid = UUID(flow_id)
    result = runner.run("in", flow_id=fid) if mode == "run" else runner.recover(fid)
    print(json.dumps({"status": result.status.value, "final_output": result.final_output}))


if __name__ == "__main__":
    main(sys.argv[1:])
