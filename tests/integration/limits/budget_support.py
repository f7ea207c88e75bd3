"""Graphs, executors and engines of the budget tests."""

from __future__ import annotations

import itertools
import os
from typing import Any

from quartermaster_engine import Engine, NodeResult, SimpleNodeRegistry
from quartermaster_engine.budgets import BudgetsConfig
from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.runner.key_limits import Rule
from quartermaster_engine.runner.stepper import FlowStepper
from quartermaster_engine.testing.graphs import build_graph
from quartermaster_engine.types import GraphSpec

#: What every "llm" run reports (as the LLM pack's nodes do in their output data).
USAGE = {"input_tokens": 100, "output_tokens": 20}
PRICES = {"m1": {"input": 2.0, "output": 10.0}}  # per million tokens
#: The limit key every "llm" node declares (limited only where a test says so).
TENANT = "tenant:acme"


def llm(ctx: ExecutionContext) -> NodeResult:
    side = os.environ.get("BUDGET_SIDE")
    if side:  # every run of the node's work, one line (the race test counts them)
        with open(side, "a") as out:
            out.write(f"{ctx.current_node.name}\n")
    data: dict[str, Any] = {"usage": dict(USAGE), "model": "m1"}
    if ctx.current_node.name.startswith("flaky") and ctx.attempt == 1:
        return NodeResult(success=False, error="rate limited", data=data)
    return NodeResult(output_text=f"{ctx.current_node.name} ok", data=data)


def registry() -> SimpleNodeRegistry:
    return SimpleNodeRegistry({"llm": llm})


def chain(names: list[str]) -> GraphSpec:
    """Start -> each of ``names`` (an "llm" node declaring the limit key
    ``tenant:acme``; ``flaky*`` ones retry once) -> End."""
    nodes: dict[str, str | dict[str, Any]] = {"Start": "Start1"}
    for name in names:
        spec: dict[str, Any] = {"type": "llm", "metadata": {"limit_keys": [TENANT]}}
        if name.startswith("flaky"):
            spec.update(error_handling="Retry", max_retries=2, retry_delay=0)
        nodes[name] = spec
    nodes["End"] = "End1"
    order = ["Start", *names, "End"]
    return build_graph(nodes, list(itertools.pairwise(order)), name="spend")


def engine(store: Any, key_limits: dict[str, Rule] | None = None, **budgets: Any) -> Engine:
    config = BudgetsConfig.model_validate({"prices": PRICES, **budgets})
    return Engine(store=store, registry=registry(), budgets=config, key_limits=key_limits)


async def drive_as_workers(
    eng: Any, flow_id: Any, stepper: FlowStepper | None = None, queued: Any = None
) -> Any:
    """Advance the flow as distributed workers do: execute outside the lease, then
    complete under it, until nothing is queued (from ``queued``, else what is
    pending); the last step's result."""
    stepper = stepper or FlowStepper(eng)
    pending = await stepper.pending(flow_id) if queued is None else queued
    queue = [ref for ref, _ in pending]
    last = None
    while queue:
        work = await stepper.execute(flow_id, queue.pop(0))
        assert work is not None
        last = await stepper.complete(work)
        queue.extend(ref for ref, _ in last.queued)
    return last
