"""Flows under the thread dispatcher: where executors run, event order, stop, several
flows and runners at once, retries, timeouts and shutdown while flows run."""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from thread_support import WORKER_PREFIX, fan_graph, wait_until, worker_threads

from qm_dispatch_thread import ThreadDispatcher
from quartermaster_engine import (
    ExecutionContext,
    FlowError,
    FlowEvent,
    FlowFinished,
    FlowRunner,
    FlowStatus,
    FlowStopped,
    NodeFinished,
    NodeResult,
    NodeRetrying,
    NodeStarted,
    SimpleNodeRegistry,
    TokenGenerated,
)
from quartermaster_engine.testing import build_graph, chain_graph
from quartermaster_engine.testing.graphs import name_id


@pytest.fixture
def dispatcher() -> Iterator[ThreadDispatcher]:
    dispatcher = ThreadDispatcher(max_workers=4)
    yield dispatcher
    dispatcher.shutdown()


def count(events: list[FlowEvent], kind: type[FlowEvent]) -> int:
    return sum(1 for e in events if isinstance(e, kind))


def describe(name: str) -> str:
    return f"'{name}' ({name_id(name)})"


def test_blocking_executors_run_in_the_pool_async_ones_and_events_on_the_loop(
    dispatcher: ThreadDispatcher,
) -> None:
    where: dict[str, str] = {}
    event_threads: set[str] = set()

    def blocking(ctx: ExecutionContext) -> str:
        where[ctx.current_node.name] = threading.current_thread().name
        return ctx.current_node.name

    async def nonblocking(ctx: ExecutionContext) -> str:
        where[ctx.current_node.name] = threading.current_thread().name
        return ctx.current_node.name

    graph = build_graph(
        {
            "Start": "Start1",
            "B": "blocking",
            "A": "async",
            "J": {"type": "blocking", "traverse_in": "AwaitAll"},
            "End": "End1",
        },
        [("Start", "B"), ("Start", "A"), ("B", "J"), ("A", "J"), ("J", "End")],
    )
    runner = FlowRunner(
        graph,
        SimpleNodeRegistry({"blocking": blocking, "async": nonblocking}),
        dispatcher=dispatcher,
        on_event=lambda event: event_threads.add(threading.current_thread().name),
    )
    result = runner.run("x")
    assert result.status is FlowStatus.COMPLETED
    assert result.final_output == "J"
    # run() from a script drives the flow on a loop of the calling thread.
    assert where["A"] == "MainThread"
    assert where["B"].startswith(WORKER_PREFIX)
    assert where["J"].startswith(WORKER_PREFIX)
    assert event_threads == {"MainThread"}


def test_tokens_of_concurrent_nodes_stay_in_order_before_their_node_finishes(
    dispatcher: ThreadDispatcher,
) -> None:
    def stream(ctx: ExecutionContext) -> str:
        name = ctx.current_node.name
        for i in range(100):
            ctx.emit_token(f"{name}-{i}")
            if i % 10 == 0:
                time.sleep(0.0005)  # let the other branches interleave
        return name

    events: list[FlowEvent] = []
    runner = FlowRunner(
        fan_graph(10, branch="stream"),
        SimpleNodeRegistry({"stream": stream, "join": lambda ctx: "joined"}),
        dispatcher=dispatcher,
        on_event=events.append,
    )
    assert runner.run("x").final_output == "joined"
    logged = [e for e in events if not isinstance(e, TokenGenerated)]
    assert [e.seq for e in logged] == list(range(1, len(logged) + 1))
    pairs = itertools.pairwise(events)
    assert all(e.seq == p.seq for p, e in pairs if isinstance(e, TokenGenerated))
    for b in range(10):
        node = name_id(f"b{b}")
        positions = [i for i, e in enumerate(events) if getattr(e, "node_id", None) == node]
        tokens = [events[i].token for i in positions if isinstance(events[i], TokenGenerated)]
        assert tokens == [f"b{b}-{i}" for i in range(100)]
        kinds = [type(events[i]) for i in positions]
        assert kinds == [NodeStarted, *[TokenGenerated] * 100, NodeFinished]


def test_parallel_branches_writing_memory_lose_no_write(dispatcher: ThreadDispatcher) -> None:
    def branch(ctx: ExecutionContext) -> NodeResult:
        time.sleep(random.random() / 1000)
        name = ctx.current_node.name
        return NodeResult(output_text=name, data={"memory_updates": {name: len(ctx.memory)}})

    seen: list[list[str]] = []

    def join(ctx: ExecutionContext) -> str:
        seen.append(sorted(ctx.memory))
        return "joined"

    runner = FlowRunner(
        fan_graph(50), SimpleNodeRegistry({"branch": branch, "join": join}), dispatcher=dispatcher
    )
    for _ in range(5):
        assert runner.run("x").final_output == "joined"
    assert seen == [sorted(f"b{i}" for i in range(50))] * 5


def _waiting_branch(started: list[str], saw_cancel: list[bool], lock: threading.Lock) -> Any:
    """A blocking executor that runs until its flow is stopping."""

    def branch(ctx: ExecutionContext) -> str:
        with lock:
            started.append(ctx.current_node.name)
        deadline = time.monotonic() + 10
        while not ctx.cancelled and time.monotonic() < deadline:
            time.sleep(0.002)
        with lock:
            saw_cancel.append(ctx.cancelled)
        return "stopped"

    return branch


@pytest.mark.parametrize("limits", [None, {"branch": 2}], ids=["pool-bound", "type-limit"])
def test_stop_in_the_middle_of_a_fan_out(limits: dict[str, int] | None) -> None:
    dispatcher = ThreadDispatcher(max_workers=4, type_limits=limits)
    running_at_once = 2 if limits else 4
    started: list[str] = []
    saw_cancel: list[bool] = []
    lock = threading.Lock()
    joined: list[str] = []
    events: list[FlowEvent] = []
    registry = SimpleNodeRegistry(
        {
            "branch": _waiting_branch(started, saw_cancel, lock),
            "join": lambda ctx: joined.append("J") or "joined",
        }
    )
    runner = FlowRunner(fan_graph(100), registry, dispatcher=dispatcher, on_event=events.append)
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(runner.run("x")))
    thread.start()
    assert wait_until(lambda: len(started) == running_at_once)
    runner.stop(runner.active_flows[0])
    thread.join(15)
    assert wait_until(lambda: len(saw_cancel) == running_at_once)
    time.sleep(0.1)  # a call wrongly started after the stop would show up by now
    dispatcher.shutdown()

    result = results[0]
    assert result.status is FlowStatus.STOPPED
    assert result.success is False
    assert sorted(started) == sorted(f"b{i}" for i in range(running_at_once))
    assert saw_cancel == [True] * running_at_once
    assert joined == []
    # Every branch activation had started (its call waiting for a thread) and is cancelled.
    cancelled = [r for r in result.node_results.values() if r.error == "cancelled: flow stopping"]
    assert len(cancelled) == 100
    assert count(events, NodeStarted) == 101
    assert count(events, NodeFinished) == 1  # Start
    assert count(events, FlowStopped) == 1
    assert count(events, FlowFinished) == 0
    assert count(events, FlowError) == 0


def test_closing_run_async_early_stops_blocking_branches(dispatcher: ThreadDispatcher) -> None:
    started: list[str] = []
    saw_cancel: list[bool] = []
    lock = threading.Lock()
    registry = SimpleNodeRegistry(
        {"branch": _waiting_branch(started, saw_cancel, lock), "join": lambda ctx: "joined"}
    )
    runner = FlowRunner(fan_graph(3), registry, dispatcher=dispatcher)

    async def consume() -> list[str]:
        seen = []
        events = runner.run_async("x")
        async for event in events:
            seen.append(event.type)
            if isinstance(event, NodeStarted) and event.node_name == "b2":
                await asyncio.to_thread(wait_until, lambda: len(started) == 3)
                break
        # Closing the iterator is what stops the flow. Left to asyncio.run, its teardown
        # cancels the flow's task first, and a cancelled flow does not tell its blocking
        # executors (a core issue, whatever the dispatcher).
        await events.aclose()
        return seen

    seen = asyncio.run(consume())
    assert seen == ["FlowStarted", "NodeStarted", "NodeFinished", *["NodeStarted"] * 3]
    assert wait_until(lambda: len(saw_cancel) == 3)
    assert saw_cancel == [True, True, True]


def test_two_flows_at_once_on_one_runner(dispatcher: ThreadDispatcher) -> None:
    rng = random.Random(7)
    delays = {f"b{i}": rng.random() / 200 for i in range(30)}
    joins: list[tuple[str, str]] = []
    lock = threading.Lock()

    def branch(ctx: ExecutionContext) -> str:
        time.sleep(delays[ctx.current_node.name])
        return f"{ctx.input_text}:{ctx.current_node.name}"

    def join(ctx: ExecutionContext) -> str:
        first = ctx.input_text.split(":")[0]
        with lock:
            joins.append((first, ctx.input_text))
        return first

    runner = FlowRunner(
        fan_graph(30), SimpleNodeRegistry({"branch": branch, "join": join}), dispatcher=dispatcher
    )

    async def both() -> list[Any]:
        return list(await asyncio.gather(runner.arun("one"), runner.arun("two")))

    one, two = asyncio.run(both())
    assert (one.final_output, two.final_output) == ("one", "two")
    assert sorted(joins) == [
        (flow, "\n".join(f"{flow}:b{i}" for i in range(30))) for flow in ("one", "two")
    ]


def test_several_runners_on_several_loops_share_one_dispatcher() -> None:
    dispatcher = ThreadDispatcher(max_workers=3, thread_name_prefix="qm-shared")

    def echo(ctx: ExecutionContext) -> str:
        time.sleep(0.0005)
        return f"{ctx.current_node.name}({ctx.input_text})"

    def branch(ctx: ExecutionContext) -> str:
        time.sleep(0.001)
        return ctx.current_node.name

    registry = SimpleNodeRegistry(
        {"echo": echo, "branch": branch, "join": lambda ctx: ctx.input_text.replace("\n", ",")}
    )
    chain_runner = FlowRunner(chain_graph(12), registry, dispatcher=dispatcher)
    fan_runner = FlowRunner(fan_graph(20), registry, dispatcher=dispatcher)
    chained = "in"
    for i in range(10):
        chained = f"n{i}({chained})"
    fanned = ",".join(f"b{i}" for i in range(20))

    outputs: dict[str, list[str]] = {}
    barrier = threading.Barrier(3)

    def in_thread(key: str, runner: FlowRunner) -> None:
        barrier.wait(10)
        outputs[key] = [runner.run("in").final_output for _ in range(5)]

    def on_one_loop() -> None:
        async def gather() -> list[Any]:
            flows = [chain_runner.arun("in"), fan_runner.arun("in")] * 3
            return list(await asyncio.gather(*flows))

        barrier.wait(10)
        outputs["gathered"] = [r.final_output for r in asyncio.run(gather())]

    threads = [
        threading.Thread(target=in_thread, args=("chain", chain_runner)),
        threading.Thread(target=in_thread, args=("fan", fan_runner)),
        threading.Thread(target=on_one_loop),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(worker_threads("qm-shared")) <= 3
    dispatcher.shutdown()
    assert outputs == {
        "chain": [chained] * 5,
        "fan": [fanned] * 5,
        "gathered": [chained, fanned] * 3,
    }


def _retry_graph(max_retries: int) -> Any:
    return build_graph(
        {
            "Start": "Start1",
            "F": {
                "type": "flaky",
                "error_handling": "Retry",
                "max_retries": max_retries,
                "retry_delay": 0.001,
            },
            "End": "End1",
        },
        [("Start", "F"), ("F", "End")],
    )


def test_a_raising_blocking_executor_is_retried(dispatcher: ThreadDispatcher) -> None:
    attempts: list[tuple[int, bool]] = []

    def flaky(ctx: ExecutionContext) -> str:
        attempts.append((ctx.attempt, threading.current_thread().name.startswith(WORKER_PREFIX)))
        if ctx.attempt < 3:
            raise ConnectionError("try again")
        return "third time"

    events: list[FlowEvent] = []
    runner = FlowRunner(
        _retry_graph(3),
        SimpleNodeRegistry({"flaky": flaky}),
        dispatcher=dispatcher,
        on_event=events.append,
    )
    result = runner.run("x")
    assert result.status is FlowStatus.COMPLETED
    assert result.final_output == "third time"
    assert attempts == [(1, True), (2, True), (3, True)]
    retries = [e for e in events if isinstance(e, NodeRetrying)]
    assert [(e.attempt, e.next_attempt, e.error) for e in retries] == [
        (1, 2, "ConnectionError: try again"),
        (2, 3, "ConnectionError: try again"),
    ]
    assert count(events, FlowError) == 0


def test_a_blocking_executor_that_keeps_raising_fails_after_its_retries(
    dispatcher: ThreadDispatcher,
) -> None:
    attempts: list[int] = []

    def flaky(ctx: ExecutionContext) -> str:
        attempts.append(ctx.attempt)
        raise ConnectionError("down")

    events: list[FlowEvent] = []
    runner = FlowRunner(
        _retry_graph(2),
        SimpleNodeRegistry({"flaky": flaky}),
        dispatcher=dispatcher,
        on_event=events.append,
    )
    result = runner.run("x")
    assert attempts == [1, 2, 3]
    assert result.status is FlowStatus.FAILED
    assert result.error == f"node {describe('F')}: ConnectionError: down"
    assert count(events, NodeRetrying) == 2
    assert [(e.node_name, e.recoverable) for e in events if isinstance(e, FlowError)] == [
        ("F", False)
    ]


def test_a_blocking_call_over_its_timeout_fails_the_node(dispatcher: ThreadDispatcher) -> None:
    release = threading.Event()
    finished: list[str] = []

    def slow(ctx: ExecutionContext) -> str:
        release.wait(10)
        finished.append(ctx.current_node.name)
        return "late"

    graph = build_graph(
        {"Start": "Start1", "S": {"type": "slow", "timeout": 0.05}, "End": "End1"},
        [("Start", "S"), ("S", "End")],
    )
    runner = FlowRunner(graph, SimpleNodeRegistry({"slow": slow}), dispatcher=dispatcher)
    result = runner.run("x")
    assert result.status is FlowStatus.FAILED
    assert result.error == f"node {describe('S')} timed out after 0.05 s (attempt 1 of 1)"
    assert finished == []  # still running in its thread: threads cannot be killed
    release.set()
    assert wait_until(lambda: finished == ["S"])


def test_stop_iteration_from_an_executor_fails_its_node(dispatcher: ThreadDispatcher) -> None:
    def odd(ctx: ExecutionContext) -> str:
        raise StopIteration

    graph = build_graph(
        {"Start": "Start1", "O": "odd", "End": "End1"}, [("Start", "O"), ("O", "End")]
    )
    result = FlowRunner(graph, SimpleNodeRegistry({"odd": odd}), dispatcher=dispatcher).run("x")
    assert result.status is FlowStatus.FAILED
    assert result.error == (
        f"node {describe('O')}: RuntimeError: a blocking executor raised StopIteration: "
        "StopIteration()"
    )


def test_run_inside_a_running_loop_uses_the_pool(dispatcher: ThreadDispatcher) -> None:
    where: list[str] = []

    def echo(ctx: ExecutionContext) -> str:
        where.append(threading.current_thread().name)
        return f"{ctx.current_node.name}({ctx.input_text})"

    runner = FlowRunner(chain_graph(4), SimpleNodeRegistry({"echo": echo}), dispatcher=dispatcher)

    async def notebook_cell() -> str:
        return runner.run("in").final_output  # blocks this loop; runs on the engine's loop

    assert asyncio.run(notebook_cell()) == "n1(n0(in))"
    assert [name.startswith(WORKER_PREFIX) for name in where] == [True, True]


def test_shutdown_without_wait_stops_the_flows_it_serves() -> None:
    dispatcher = ThreadDispatcher(max_workers=2)
    started: list[str] = []
    saw_cancel: list[bool] = []
    lock = threading.Lock()
    events: list[FlowEvent] = []
    registry = SimpleNodeRegistry(
        {"branch": _waiting_branch(started, saw_cancel, lock), "join": lambda ctx: "joined"}
    )
    runner = FlowRunner(fan_graph(20), registry, dispatcher=dispatcher, on_event=events.append)
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(runner.run("x")))
    thread.start()
    assert wait_until(lambda: len(started) == 2)
    dispatcher.shutdown(wait=False)
    thread.join(15)
    assert wait_until(lambda: len(saw_cancel) == 2)
    dispatcher.shutdown()
    assert results[0].status is FlowStatus.STOPPED
    assert saw_cancel == [True, True]
    assert sorted(started) == ["b0", "b1"]
    assert [e.reason for e in events if isinstance(e, FlowStopped)] == [
        "the thread dispatcher was shut down"
    ]
    assert count(events, FlowError) == 0


def test_a_flow_on_a_shut_down_dispatcher_fails_with_a_clear_error() -> None:
    dispatcher = ThreadDispatcher(max_workers=2)
    dispatcher.shutdown()
    runner = FlowRunner(
        chain_graph(3), SimpleNodeRegistry({"echo": lambda ctx: "x"}), dispatcher=dispatcher
    )
    result = runner.run("x")
    assert result.status is FlowStatus.FAILED
    assert result.error == (
        f"node {describe('n0')}: DispatcherShutdownError: the thread dispatcher is shut down; "
        "create a new ThreadDispatcher"
    )


def test_a_flow_calling_after_shutdown_without_wait_is_stopped() -> None:
    dispatcher = ThreadDispatcher(max_workers=2)
    dispatcher.shutdown(wait=False)
    ran: list[str] = []
    events: list[FlowEvent] = []
    runner = FlowRunner(
        chain_graph(4),
        SimpleNodeRegistry({"echo": lambda ctx: ran.append(ctx.current_node.name) or "x"}),
        dispatcher=dispatcher,
        on_event=events.append,
    )
    result = runner.run("x")
    assert result.status is FlowStatus.STOPPED
    assert ran == []
    assert [e.reason for e in events if isinstance(e, FlowStopped)] == [
        "the thread dispatcher was shut down"
    ]
    assert count(events, FlowError) == 0
