"""run_async streams events natively; run() works inside a running loop; blocking executors
do not block the loop under the async dispatcher."""

from __future__ import annotations

import asyncio
import time

from support import Trace, build, chain

from quartermaster_engine import (
    AsyncDispatcher,
    ExecutionContext,
    FlowRunner,
    FlowStatus,
    NodeResult,
    TokenGenerated,
)


def test_run_async_yields_events_while_the_flow_runs() -> None:
    progress: list[str] = []

    async def step(ctx: ExecutionContext) -> str:
        progress.append(ctx.current_node.name)
        ctx.emit_token("a")
        await asyncio.sleep(0.01)
        ctx.emit_token("b")
        return ctx.current_node.name

    trace = Trace().on("step", step)
    runner = FlowRunner(chain(4), trace.registry)

    async def consume() -> list[tuple[str, str, list[str]]]:
        seen = []
        async for event in runner.run_async("go"):
            label = getattr(event, "node_name", "") or getattr(event, "token", "")
            seen.append((event.type, label, list(progress)))
        return seen

    seen = asyncio.run(consume())
    assert [(kind, label) for kind, label, _ in seen] == [
        ("FlowStarted", ""),
        ("NodeStarted", "Start"),
        ("NodeFinished", "Start"),
        ("NodeStarted", "n0"),
        ("TokenGenerated", "a"),
        ("TokenGenerated", "b"),
        ("NodeFinished", "n0"),
        ("NodeStarted", "n1"),
        ("TokenGenerated", "a"),
        ("TokenGenerated", "b"),
        ("NodeFinished", "n1"),
        ("NodeStarted", "End"),
        ("NodeFinished", "End"),
        ("FlowFinished", ""),
    ]
    # The first token arrived while n1 had not started yet: events are live, not replayed.
    first_token = next(p for kind, _, p in seen if kind == "TokenGenerated")
    assert first_token == ["n0"]


def test_breaking_out_of_run_async_stops_the_flow() -> None:
    trace = Trace().on("step", lambda ctx: asyncio.sleep(0.01, result="x"))
    runner = FlowRunner(chain(50), trace.registry)

    async def consume() -> int:
        count = 0
        async for event in runner.run_async("go"):
            count += 1
            if event.type == "NodeFinished" and getattr(event, "node_name", "") == "n2":
                break
        await asyncio.sleep(0.1)
        return count

    asyncio.run(consume())
    assert 3 <= len(trace.calls) <= 4
    assert runner.active_flows == []


def test_run_called_inside_a_running_event_loop_works() -> None:
    trace = Trace().on("step")
    runner = FlowRunner(chain(4), trace.registry)

    async def handler() -> object:
        return runner.run("from a coroutine")

    result = asyncio.run(handler())
    assert result.status is FlowStatus.COMPLETED  # type: ignore[attr-defined]
    assert result.final_output == "n1(n0(from a coroutine))"  # type: ignore[attr-defined]


def test_a_blocking_executor_does_not_block_async_branches() -> None:
    ticks: list[float] = []

    def blocking(ctx: ExecutionContext) -> str:
        time.sleep(0.3)
        return "slept"

    async def ticker(ctx: ExecutionContext) -> str:
        for _ in range(5):
            ticks.append(time.monotonic())
            await asyncio.sleep(0.02)
        return "ticked"

    trace = Trace().on_blocking("blocking", blocking).on("ticker", ticker)
    graph = build(
        {
            "Start": "Start1",
            "Block": "blocking",
            "Tick": "ticker",
            "J": {"type": "ticker", "traverse_in": "AwaitAll"},
        },
        [("Start", "Block"), ("Start", "Tick"), ("Block", "J"), ("Tick", "J")],
    )
    started = time.monotonic()
    result = FlowRunner(graph, trace.registry, dispatcher=AsyncDispatcher()).run("x")
    assert result.status is FlowStatus.COMPLETED
    # All five ticks of the async branch happened while the blocking call slept.
    assert ticks[4] - started < 0.3
    assert trace.names()[:2] == ["Block", "Tick"]


def test_tokens_reach_on_event_and_the_context_callback_in_order() -> None:
    tokens: list[str] = []

    async def stream(ctx: ExecutionContext) -> NodeResult:
        ctx.on_token = tokens.append
        for t in ["Hel", "lo", "!"]:
            ctx.emit_token(t)
        return NodeResult(output_text="Hello!")

    trace = Trace().on("step", stream)
    runner = FlowRunner(chain(3), trace.registry, on_event=trace.events.append)
    runner.run("x")
    assert [e.token for e in trace.events_of(TokenGenerated)] == ["Hel", "lo", "!"]
    assert tokens == ["Hel", "lo", "!"]
