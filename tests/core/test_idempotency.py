"""context.idempotency_key: one key per (flow, node, visit), the same on every
attempt and when the activation runs again after an interrupted run."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid5

from quartermaster_engine import (
    FlowRunner,
    FlowStatus,
    InMemoryStore,
    NodeResult,
    SimpleNodeRegistry,
)
from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.testing import build_graph
from quartermaster_engine.testing.graphs import name_id

GRAPH = build_graph(
    {
        "Start": "Start1",
        "Pay": {"type": "pay", "error_handling": "Retry", "max_retries": 2, "retry_delay": 0},
        "Mail": "mail",
        "End": "End1",
    },
    [("Start", "Pay"), ("Pay", "Mail"), ("Mail", "End")],
)


def test_the_key_is_stable_across_attempts_and_a_recovered_run() -> None:
    seen: list[tuple[str, int, str]] = []
    block = {"on": True}
    entered = asyncio.Event()

    def pay(ctx: ExecutionContext) -> NodeResult:
        seen.append(("Pay", ctx.attempt, ctx.idempotency_key))
        if ctx.attempt < 3:
            return NodeResult(success=False, error="payment API timed out")
        return NodeResult(output_text="paid")

    async def mail(ctx: ExecutionContext) -> str:
        seen.append(("Mail", ctx.attempt, ctx.idempotency_key))
        if block["on"]:
            entered.set()
            await asyncio.sleep(60)  # the process "dies" here
        return "sent"

    store = InMemoryStore()
    registry = SimpleNodeRegistry({"pay": pay, "mail": mail})

    async def interrupted() -> Any:
        runner = FlowRunner(GRAPH, registry, store=store)
        task = asyncio.ensure_future(runner.arun("order 7"))
        await entered.wait()
        (flow_id,) = runner.active_flows
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return flow_id

    flow_id = asyncio.run(interrupted())
    block["on"] = False
    result = FlowRunner(GRAPH, registry, store=store).recover(flow_id)
    assert result.status is FlowStatus.COMPLETED
    pay_key = str(uuid5(flow_id, f"{name_id('Pay')}:1"))
    mail_key = str(uuid5(flow_id, f"{name_id('Mail')}:1"))
    assert seen == [
        ("Pay", 1, pay_key),
        ("Pay", 2, pay_key),
        ("Pay", 3, pay_key),
        ("Mail", 1, mail_key),
        ("Mail", 1, mail_key),  # run again after the interruption: the same key
    ]
    other = FlowRunner(GRAPH, registry, store=store).run("order 8")
    assert other.status is FlowStatus.COMPLETED
    assert seen[-2][2] != mail_key  # another flow, another key
