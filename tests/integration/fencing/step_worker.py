"""A process that advances stored flows on request: ``python step_worker.py '<json args>'``.

Reads lines from stdin: ``step <flow id>`` runs one `FlowStepper.step` and
prints its result as one JSON line; ``submit <input>`` stores a new flow and
prints its id. Ends at end of input.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any
from uuid import UUID

from race_worker import make_store

from quartermaster_engine import FlowRunner, NodeResult, SimpleNodeRegistry
from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.runner.stepper import FlowStepper
from quartermaster_engine.testing.graphs import branching_graph


def registry() -> SimpleNodeRegistry:
    def work(ctx: ExecutionContext) -> NodeResult:
        text = f"{ctx.current_node.name}{ctx.visit}({ctx.input_text})"
        return NodeResult(output_text=text, data={"memory_updates": {ctx.current_node.name: pid}})

    def route(ctx: ExecutionContext) -> NodeResult:
        return NodeResult(output_text=ctx.input_text, picked_node="left")

    def again(ctx: ExecutionContext) -> NodeResult:
        pick = "again" if ctx.visit < 2 else "done"
        return NodeResult(output_text=ctx.input_text[-40:], picked_node=pick)

    pid = os.getpid()
    return SimpleNodeRegistry({"work": work, "route": route, "again": again})


async def main(args: dict[str, Any]) -> None:
    store = make_store(args["store"])
    runner = FlowRunner(branching_graph(), registry(), store=store)
    stepper = FlowStepper(runner)
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command, _, rest = line.strip().partition(" ")
            if command == "submit":
                reply: dict[str, Any] = {"flow_id": str(await runner.asubmit(rest))}
            else:
                step = await stepper.step(UUID(rest))
                reply = {"ran": step.ran, "status": step.status.value, "ready": step.ready}
            print(json.dumps(reply), flush=True)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
