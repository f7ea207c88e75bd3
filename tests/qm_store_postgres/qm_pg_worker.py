"""A flow in a process of its own, for the crash and multi-process tests.

    python qm_pg_worker.py run|recover chain|fanout DSN SCHEMA FLOW_ID SIDE_FILE \
        [KILL_AT HOW SEED]
    python qm_pg_worker.py many chain DSN SCHEMA PREFIX SIDE_FILE COUNT GO_FILE

Executors append their node's name (and, for ``many``, the flow id first) to
SIDE_FILE. In ``run`` mode the process SIGKILLs itself at the KILL_AT-th
executor call: ``before`` it writes its line, ``after`` it, or from a ``timer``
thread a random instant later (which may fall inside a commit). ``many`` waits
for GO_FILE, then runs COUNT 20-node chains at once. Prints the result as JSON.
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
from pathlib import Path
from typing import Any
from uuid import UUID

from qm_store_postgres import PostgresStore
from quartermaster_engine import AsyncDispatcher, FlowRunner
from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry
from quartermaster_engine.testing import build_graph, chain_graph
from quartermaster_graph import GraphSpec

CHAIN_LENGTH = 300
BRANCHES = 50
MANY_LENGTH = 20


def chain(length: int = CHAIN_LENGTH) -> GraphSpec:
    return chain_graph(length, "work")


def fanout() -> GraphSpec:
    branches = [f"B{i}" for i in range(BRANCHES)]
    nodes: dict[str, Any] = {"Start": "Start1", **dict.fromkeys(branches, "work")}
    nodes["J"] = {"type": "work", "traverse_in": "AwaitAll"}
    nodes["End"] = "End1"
    edges = [("Start", b) for b in branches] + [(b, "J") for b in branches] + [("J", "End")]
    return build_graph(nodes, edges)


def expected_output(shape: str, flow_input: str = "in", length: int = CHAIN_LENGTH) -> str:
    if shape == "chain":
        out = flow_input
        for i in range(length - 2):
            out = f"n{i}({out})"
        return out
    joined = "\n".join(f"B{i}({flow_input})" for i in range(BRANCHES))
    return f"J({joined})"


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str]) -> Any:
    mode, shape, dsn, schema, ident, side = argv[:6]
    store = PostgresStore(dsn, schema_name=schema)
    try:
        if mode == "many":
            go = Path(argv[7])
            go.with_name(f"ready-{ident}").touch()
            while not go.exists():
                time.sleep(0.001)
            return asyncio.run(_many(store, ident, Path(side), int(argv[6])))
        return _one(store, mode, shape, UUID(ident), side, argv[6:])
    finally:
        asyncio.run(store.close())


def _one(store: PostgresStore, mode: str, shape: str, fid: UUID, side: str, rest: list[str]) -> Any:
    kill_at, how, seed = (int(rest[0]), rest[1], int(rest[2])) if rest else (0, "", 0)
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

    if shape == "chain":
        runner = FlowRunner(chain(), SimpleNodeRegistry({"work": work}), store=store)
    else:
        runner = FlowRunner(
            fanout(),
            SimpleNodeRegistry({"work": work_async}),
            store=store,
            dispatcher=AsyncDispatcher(max_concurrency=8),
        )
    result = runner.run("in", flow_id=fid) if mode == "run" else runner.recover(fid)
    return {"status": result.status.value, "final_output": result.final_output}


async def _many(store: PostgresStore, prefix: str, side: Path, count: int) -> Any:
    fd = os.open(side, os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    async def work(ctx: Any) -> NodeResult:
        await asyncio.sleep(0)
        os.write(fd, f"{ctx.flow_id} {ctx.current_node.name}\n".encode())
        return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")

    runner = FlowRunner(
        chain(MANY_LENGTH), SimpleNodeRegistry({"work": work}), store=store,
        dispatcher=AsyncDispatcher(),
    )  # fmt: skip
    results = await asyncio.gather(*(runner.arun(f"{prefix}-{i}") for i in range(count)))
    return [
        {"flow_id": str(r.flow_id), "status": r.status.value, "final_output": r.final_output}
        for r in results
    ]


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])), flush=True)
