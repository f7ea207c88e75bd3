"""A process of the SQLite store tests: ``python sqlite_worker.py <command> '<json args>'``.

Prints one JSON line with what happened. Commands:

- ``run``: start a flow (``graph``, ``size``, ``flow_id``, ``input``), appending
  one line per executor run to ``side``; ``stall_at`` hangs that run.
- ``recover``: recover ``flow_id``.
- ``many``: once ``go`` exists, run ``count`` chains at once (inputs
  ``<prefix>-<i>``).
- ``pause`` / ``resume``: the ask graph, paused, then answered with ``answer``.
- ``no_close``: run a chain and exit without closing the store.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlite_support import graph_named, registry

from qm_store_sqlite import SQLiteStore
from quartermaster_engine import AsyncDispatcher, FlowRunner
from quartermaster_engine.runner.result import FlowResult


def _summary(result: FlowResult) -> dict[str, Any]:
    return {
        "flow_id": str(result.flow_id),
        "status": result.status.value,
        "final_output": result.final_output,
        "error": result.error,
        "waiting": [w.node_name for w in result.waiting],
    }


def main(command: str, args: dict[str, Any]) -> dict[str, Any]:
    store = SQLiteStore(args["db"])
    side = Path(args["side"]) if args.get("side") else None
    reg = registry(side, args.get("stall_at"))
    graph = graph_named(args.get("graph", "chain"), args.get("size", 0))
    runner = FlowRunner(graph, reg, store=store)
    flow_id = UUID(args["flow_id"]) if args.get("flow_id") else None
    if command == "no_close":
        return _summary(runner.run(args["input"], flow_id))
    try:
        if command in ("run", "pause"):
            return _summary(runner.run(args["input"], flow_id))
        if command == "recover":
            assert flow_id is not None
            return _summary(runner.recover(flow_id))
        if command == "resume":
            assert flow_id is not None
            return _summary(runner.resume(flow_id, args["answer"]))
        if command == "many":
            go = Path(args["go"])
            go.with_name(f"ready-{args['prefix']}").touch()
            while not go.exists():
                time.sleep(0.001)
            return {"results": asyncio.run(_many(store, reg, graph, args))}
        raise SystemExit(f"unknown command {command!r}")
    finally:
        asyncio.run(store.close())


async def _many(store: SQLiteStore, reg: Any, graph: Any, args: dict[str, Any]) -> list[Any]:
    runner = FlowRunner(graph, reg, store=store, dispatcher=AsyncDispatcher())
    results = await asyncio.gather(
        *(runner.arun(f"{args['prefix']}-{i}") for i in range(args["count"]))
    )
    return [_summary(r) for r in results]


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], json.loads(sys.argv[2]))), flush=True)
