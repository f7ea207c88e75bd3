"""A flow in a process of its own, for the crash and multi-process tests.

    python qm_pg_worker.py DSN SCHEMA run|recover chain|fanout FLOW_ID SIDE_FILE \
        [KILL_AT HOW SEED]
    python qm_pg_worker.py DSN SCHEMA many PREFIX SIDE_FILE COUNT GO_FILE

``run`` and ``recover`` are the engine's crash kit
(`quartermaster_engine.testing.crash`). ``many`` waits for GO_FILE, then runs
COUNT 20-node chains at once, each executor appending "<flow id> <node>" to
SIDE_FILE. Prints the result as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from qm_store_postgres import PostgresStore
from quartermaster_engine import AsyncDispatcher, FlowRunner
from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry
from quartermaster_engine.testing import chain_graph
from quartermaster_engine.testing.crash import worker_main

MANY_LENGTH = 20


def main(argv: list[str]) -> Any:
    dsn, schema, mode = argv[:3]
    store = PostgresStore(dsn, schema_name=schema)
    try:
        if mode != "many":
            return worker_main(store, argv[2:])
        prefix, side, count, go = argv[3], Path(argv[4]), int(argv[5]), Path(argv[6])
        go.with_name(f"ready-{prefix}").touch()
        while not go.exists():
            time.sleep(0.001)
        return asyncio.run(_many(store, prefix, side, count))
    finally:
        asyncio.run(store.close())


async def _many(store: PostgresStore, prefix: str, side: Path, count: int) -> Any:
    fd = os.open(side, os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    async def work(ctx: Any) -> NodeResult:
        await asyncio.sleep(0)
        os.write(fd, f"{ctx.flow_id} {ctx.current_node.name}\n".encode())
        return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")

    runner = FlowRunner(
        chain_graph(MANY_LENGTH, "work"),
        SimpleNodeRegistry({"work": work}),
        store=store,
        dispatcher=AsyncDispatcher(),
    )
    results = await asyncio.gather(*(runner.arun(f"{prefix}-{i}") for i in range(count)))
    return [
        {"flow_id": str(r.flow_id), "status": r.status.value, "final_output": r.final_output}
        for r in results
    ]


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])), flush=True)
