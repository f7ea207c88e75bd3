"""A process of the fencing tests: ``python race_worker.py <command> '<json args>'``.

Prints one JSON line with what happened. Every executor run appends
``<flow id> <node name>`` to the ``side`` file (one short line, one write: lines
of concurrent processes never mix). Commands:

- ``pause``: start ``count`` approval flows; each pauses at its user node.
- ``resume``: once ``go`` exists, answer every flow of ``flows`` in turn.
- ``run``: run a ``size``-node chain as ``flow_id``; the node ``stall`` (a
  name) touches ``entered`` and then hangs (``stall_seconds``; forever if 0).
- ``recover``: once ``go`` exists (if given), recover ``flow_id``, waiting up
  to ``wait`` seconds for a live driver.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from quartermaster_engine import AsyncDispatcher, FlowRunner, NodeResult, SimpleNodeRegistry
from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.runner.errors import FlowBusyError, FlowStateError
from quartermaster_engine.testing.graphs import build_graph, chain_graph
from quartermaster_engine.types import GraphSpec


def approval_graph() -> GraphSpec:
    return build_graph(
        {
            "Start": "Start1",
            "Draft": "work",
            "Ask": "ask",
            "Approved?": "work",
            "Publish": "work",
            "End": "End1",
        },
        [
            ("Start", "Draft"),
            ("Draft", "Ask"),
            ("Ask", "Approved?"),
            ("Approved?", "Publish"),
            ("Publish", "End"),
        ],
        name="approval",
    )


def make_store(spec: dict[str, Any]) -> Any:
    if spec["kind"] == "sqlite":
        from qm_store_sqlite import SQLiteStore

        return SQLiteStore(spec["path"])
    if spec["kind"] == "postgres":
        from qm_store_postgres import PostgresStore

        return PostgresStore(spec["url"], schema_name=spec["schema"])
    from qm_store_redis import RedisStore

    return RedisStore(spec["url"], key_prefix=spec["prefix"])


def registry(args: dict[str, Any]) -> SimpleNodeRegistry:
    side = Path(args["side"])
    stall = args.get("stall")
    entered = Path(args["entered"]) if args.get("entered") else None
    fd = os.open(side, os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    def note(ctx: ExecutionContext) -> None:
        os.write(fd, f"{ctx.flow_id} {ctx.current_node.name}\n".encode())

    async def work(ctx: ExecutionContext) -> NodeResult:
        note(ctx)
        if stall is not None and ctx.current_node.name == stall:
            if entered is not None:
                entered.touch()
            seconds = float(args.get("stall_seconds", 0))
            await asyncio.sleep(seconds if seconds > 0 else 3600)
        return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")

    def ask(ctx: ExecutionContext) -> NodeResult:
        note(ctx)
        if ctx.user_input is None:
            return NodeResult(wait_for_user=True, user_prompt="Publish it?")
        return NodeResult(output_text=f"answer: {ctx.user_input}")

    return SimpleNodeRegistry({"work": work, "ask": ask})


def _wait_for(go: str | None) -> None:
    if go:
        Path(go).with_name(f"ready-{os.getpid()}").touch()
        while not Path(go).exists():
            time.sleep(0.001)


def main(command: str, args: dict[str, Any]) -> dict[str, Any]:
    store = make_store(args["store"])
    graph = chain_graph(args["size"], "work") if command in ("run", "recover") else approval_graph()
    runner = FlowRunner(
        graph,
        registry(args),
        store=store,
        dispatcher=AsyncDispatcher(),
        lease_seconds=float(args.get("lease_seconds", 30.0)),
    )
    try:
        if command == "pause":
            flows = [runner.run(f"post {i}") for i in range(args["count"])]
            return {
                "flows": [str(r.flow_id) for r in flows],
                "status": [r.status.value for r in flows],
            }
        if command == "resume":
            _wait_for(args.get("go"))
            outcomes: dict[str, str] = {}
            for fid in args["flows"]:
                try:
                    result = runner.resume(UUID(fid), "yes")
                    outcomes[fid] = f"ok {result.status.value}"
                except FlowBusyError as exc:
                    outcomes[fid] = f"busy {exc}"
                except FlowStateError as exc:
                    outcomes[fid] = f"state {exc}"
            return {"outcomes": outcomes}
        if command == "run":
            result = runner.run("in", UUID(args["flow_id"]))
            return {"status": result.status.value, "error": result.error}
        if command == "recover":
            _wait_for(args.get("go"))
            try:
                result = runner.recover(UUID(args["flow_id"]), wait=float(args.get("wait", 0)))
            except FlowBusyError as exc:
                return {"outcome": "busy", "error": str(exc)}
            return {"outcome": result.status.value, "output": result.final_output}
        raise SystemExit(f"unknown command {command!r}")
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            asyncio.run(close())


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], json.loads(sys.argv[2]))), flush=True)
