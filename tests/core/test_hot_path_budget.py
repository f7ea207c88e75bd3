"""A guard on the hot path that cannot flake: it counts the calls made into the
engine's own functions (and the protocol checks of `typing`, which cost
microseconds each) per activation and per flow, not wall time, and fails when a
change adds work there. Counting only our code keeps the figures the same across
Python versions. Raise a budget only with a benchmark that shows why.

The budgets are today's counts plus a small margin; the figures they guard are in
benchmarks/README.md (W1: one long chain; W4: many short flows)."""

from __future__ import annotations

import asyncio
import gc
import sys
import typing
from collections.abc import Callable
from typing import Any

import pytest

import quartermaster_engine
from quartermaster_engine import (
    AsyncDispatcher,
    FlowRunner,
    NodeResult,
    SimpleNodeRegistry,
    SyncDispatcher,
)
from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.runner.compiled import CompiledGraph
from quartermaster_engine.runner.flow_run import FlowRun
from quartermaster_engine.testing.graphs import chain_graph

ENGINE = quartermaster_engine.__path__[0]
TYPING = typing.__file__
#: Besides the engine's files: `typing`'s protocol checks, and the ``__init__`` that
#: `dataclasses` generates (file "<string>"), which our events and results use.
COUNTED = (TYPING, "<string>")

#: Calls per activation of a chain on the memory store and the sync dispatcher
#: (48 when this guard was written; 49 before the store adapter bound its commit;
#: 38 once a blocking executor was called without a BlockingCall and the fence,
#: loop settling, dead-node reports and the visit-limit check were skipped where
#: they had nothing to do; 37 once the usual result was checked in one expression;
#: 40 since dataclasses' generated ``__init__`` calls count too, 41 before that check;
#: 42 with the positional constructors of `NodeStarted`/`NodeFinished`, which call a
#: shared helper and still cost less than the generated ``__init__``: W1 -7 %).
PER_ACTIVATION = 44
#: Calls per 5-node flow, one after another on one runner (360 when written; 382
#: while each flow made two protocol checks; 311 with the changes above; 306 after
#: the result check; 326 counting generated ``__init__`` calls, 331 before that check;
#: 338 with the events' positional constructors).
PER_FLOW = 345


def _echo(ctx: ExecutionContext) -> NodeResult:
    return NodeResult(output_text=ctx.input_text)


def _calls(work: Callable[[], Any]) -> int:
    count = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal count
        if event == "call":
            code = frame.f_code
            if ENGINE in code.co_filename or code.co_filename in COUNTED:
                count += 1

    sys.setprofile(profile)
    try:
        work()
    finally:
        sys.setprofile(None)
    return count


def _runner(length: int) -> FlowRunner:
    runner = FlowRunner(chain_graph(length), SimpleNodeRegistry({"echo": _echo}))
    runner.run("warm up")  # compiles and pre-flights the graph once, as any second run
    return runner


def test_calls_per_activation_stay_within_budget() -> None:
    short, long = _runner(200), _runner(400)
    per_activation = (_calls(lambda: long.run("x")) - _calls(lambda: short.run("x"))) / 200
    assert per_activation <= PER_ACTIVATION, per_activation


def test_calls_per_flow_stay_within_budget() -> None:
    runner = _runner(5)
    per_flow = _calls(lambda: [runner.run("x") for _ in range(50)]) / 50
    assert per_flow <= PER_FLOW, per_flow


def test_preflight_checks_each_node_type_once() -> None:
    # Pre-flight makes its protocol checks per node type, not per node (one per node
    # cost 20 µs each: 2 s for a 100,000-node graph).
    executors = FlowRunner(chain_graph(3), SimpleNodeRegistry({"echo": _echo})).engine.executors
    short, long = CompiledGraph(chain_graph(2000)), CompiledGraph(chain_graph(4000))
    per_node = (
        _calls(lambda: executors.preflight(long)) - _calls(lambda: executors.preflight(short))
    ) / 2000
    assert per_node == 0, per_node


#: GC-tracked objects each flow keeps while it awaits in a node, many flows at once
#: (W8's case: the garbage collector's full passes walk all of them). 104 before
#: the executor call stopped nesting two coroutines and the driver's wake, the
#: emitter's order and the listeners' sets were made lighter or lazy; 93 after;
#: 83 once a lone ready activation ran in the driver's task instead of a task of its
#: own and the executor caller kept its host instead of two of its bound methods.
PER_FLOW_IN_FLIGHT = 85


def test_objects_per_flow_in_flight_stay_within_budget() -> None:
    flows = 300
    parked: list[None] = []
    gates: list[asyncio.Event] = []  # (the gate and the all-parked signal of this loop)

    async def wait(ctx: ExecutionContext) -> NodeResult:
        parked.append(None)
        if gates:
            if len(parked) == flows:
                gates[1].set()
            await gates[0].wait()
        return NodeResult(output_text=ctx.input_text)

    runner = FlowRunner(
        chain_graph(3), SimpleNodeRegistry({"echo": wait}), dispatcher=AsyncDispatcher()
    )
    runner.run("warm up")  # compiles and pre-flights the graph once
    parked.clear()
    counted: list[int] = []

    async def main() -> None:
        gates[:] = [asyncio.Event(), asyncio.Event()]
        running = [asyncio.ensure_future(runner.arun("x")) for _ in range(flows)]
        await gates[1].wait()
        gc.collect()
        counted.append(len(gc.get_objects()))
        gates[0].set()
        results = await asyncio.gather(*running)
        assert [r.final_output for r in results] == ["x"] * flows

    gc.collect()
    before = len(gc.get_objects())
    asyncio.run(main())
    per_flow = (counted[0] - before) / flows
    assert per_flow <= PER_FLOW_IN_FLIGHT, per_flow


@pytest.mark.parametrize("dispatcher", [SyncDispatcher, AsyncDispatcher])
def test_a_finished_flow_is_freed_without_the_garbage_collector(dispatcher: type[Any]) -> None:
    # A run's parts hold it in callbacks (a cycle): once it is over they let go, so
    # refcounting frees it as it ends instead of a full collection walking every
    # finished flow (W8: thousands at once).
    runner = FlowRunner(
        chain_graph(3), SimpleNodeRegistry({"echo": _echo}), dispatcher=dispatcher()
    )
    runner.run("warm up")
    gc.collect()
    gc.disable()
    try:
        results = [runner.run("x") for _ in range(20)]
        alive = sum(1 for o in gc.get_objects() if type(o) is FlowRun)
    finally:
        gc.enable()
    assert [r.final_output for r in results] == ["x"] * 20
    assert alive == 0
