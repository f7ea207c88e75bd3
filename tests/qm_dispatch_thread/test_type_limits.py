"""Per-node-type limits: never more calls of a type at once than its limit, while the
other types use the rest of the pool."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from thread_support import Meter, fan_graph, typed_fan_graph

from qm_dispatch_thread import ThreadDispatcher
from quartermaster_engine import (
    ExecutionContext,
    FlowRunner,
    FlowStatus,
    GraphNode,
    NodeType,
    SimpleNodeRegistry,
)
from quartermaster_engine.testing import build_graph


def test_a_limited_type_never_exceeds_its_limit_and_others_use_the_rest() -> None:
    dispatcher = ThreadDispatcher(max_workers=6, type_limits={"slow": 2})
    meter = Meter()
    # Four fast calls must run together: a gate that parked waiting slow calls in
    # threads would leave fewer than four threads and break the barrier.
    together = threading.Barrier(4, timeout=10)
    fast_done = threading.Event()

    def slow(ctx: ExecutionContext) -> str:
        with meter.running("slow"):
            fast_done.wait(10)
            time.sleep(0.005)
        return ctx.current_node.name

    def fast(ctx: ExecutionContext) -> str:
        with meter.running("fast"):
            together.wait()
        if meter.calls["fast"] == 8 and meter.now["fast"] == 0:
            fast_done.set()
        return ctx.current_node.name

    types = ["slow"] * 10 + ["fast"] * 8
    registry = SimpleNodeRegistry({"slow": slow, "fast": fast, "join": lambda ctx: "joined"})
    runner = FlowRunner(typed_fan_graph(types), registry, dispatcher=dispatcher)
    result = runner.run("x")
    dispatcher.shutdown()
    assert result.status is FlowStatus.COMPLETED
    assert meter.peak == {"slow": 2, "fast": 4}
    assert meter.calls == {"slow": 10, "fast": 8}


def test_a_limit_holds_across_flows_and_runners_sharing_the_dispatcher() -> None:
    dispatcher = ThreadDispatcher(max_workers=8, type_limits={"slow": 2})
    meter = Meter()

    def slow(ctx: ExecutionContext) -> str:
        with meter.running("slow"):
            time.sleep(0.02)
        return ctx.current_node.name

    registry = SimpleNodeRegistry({"slow": slow, "join": lambda ctx: ctx.input_text})
    runners = [
        FlowRunner(fan_graph(6, branch="slow"), registry, dispatcher=dispatcher) for _ in range(2)
    ]

    async def all_flows() -> list[Any]:
        return list(await asyncio.gather(*(r.arun("x") for r in runners for _ in range(2))))

    outputs = [r.final_output for r in asyncio.run(all_flows())]
    dispatcher.shutdown()
    assert outputs == ["\n".join(f"b{i}" for i in range(6))] * 4
    assert meter.peak == {"slow": 2}
    assert meter.calls == {"slow": 24}


def test_node_type_keys_limit_nodes_of_that_type() -> None:
    dispatcher = ThreadDispatcher(max_workers=4, type_limits={NodeType.INSTRUCTION: 1})
    meter = Meter()

    def instruction(ctx: ExecutionContext) -> str:
        with meter.running("Instruction1"):
            time.sleep(0.01)
        return ctx.current_node.name

    registry = SimpleNodeRegistry({"Instruction1": instruction, "join": lambda ctx: "joined"})
    runner = FlowRunner(
        fan_graph(4, branch=NodeType.INSTRUCTION.value), registry, dispatcher=dispatcher
    )
    assert runner.run("x").final_output == "joined"
    dispatcher.shutdown()
    assert meter.peak == {"Instruction1": 1}
    assert meter.calls == {"Instruction1": 4}


SLOW = GraphNode(type="slow", name="S")


def test_a_call_cancelled_at_its_gate_never_runs_and_the_slot_passes_on() -> None:
    dispatcher = ThreadDispatcher(max_workers=4, type_limits={"slow": 1})
    release = threading.Event()
    ran: list[str] = []

    def call(name: str, wait: bool = False) -> Any:
        def fn() -> str:
            if wait:
                release.wait(5)
            ran.append(name)
            return name

        return fn

    async def main() -> list[Any]:
        first = asyncio.ensure_future(dispatcher.run_blocking(call("first", True), SLOW))
        dropped = asyncio.ensure_future(dispatcher.run_blocking(call("dropped"), SLOW))
        last = asyncio.ensure_future(dispatcher.run_blocking(call("last"), SLOW))
        await asyncio.sleep(0.05)
        dropped.cancel()
        release.set()
        return list(await asyncio.gather(first, dropped, last, return_exceptions=True))

    first, dropped, last = asyncio.run(main())
    dispatcher.shutdown()
    assert (first, last) == ("first", "last")
    assert isinstance(dropped, asyncio.CancelledError)
    assert ran == ["first", "last"]


def test_a_timed_out_call_keeps_its_slot_until_its_thread_is_done() -> None:
    """A limit protects what the executors call (an API with a quota): a call whose
    caller gave up still counts while its thread runs."""
    dispatcher = ThreadDispatcher(max_workers=4, type_limits={"slow": 1})
    release = threading.Event()
    ran: list[str] = []

    def stuck() -> str:
        release.wait(5)
        ran.append("stuck")
        return "stuck"

    async def main() -> str:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(dispatcher.run_blocking(stuck, SLOW), 0.05)
        follower = asyncio.ensure_future(
            dispatcher.run_blocking(lambda: ran.append("next") or "next", SLOW)
        )
        await asyncio.sleep(0.1)
        assert ran == []  # the stuck call still holds the type's only slot
        release.set()
        return await follower

    assert asyncio.run(main()) == "next"
    dispatcher.shutdown()
    assert ran == ["stuck", "next"]


def test_types_without_a_limit_are_not_gated() -> None:
    dispatcher = ThreadDispatcher(max_workers=4, type_limits={"slow": 1})
    together = threading.Barrier(4, timeout=10)

    def free(ctx: ExecutionContext) -> str:
        together.wait()
        return ctx.current_node.name

    graph = build_graph(
        {"Start": "Start1", **{f"f{i}": "free" for i in range(4)}},
        [("Start", f"f{i}") for i in range(4)],
    )
    runner = FlowRunner(graph, SimpleNodeRegistry({"free": free}), dispatcher=dispatcher)
    assert runner.run("x").status is FlowStatus.COMPLETED
    dispatcher.shutdown()
