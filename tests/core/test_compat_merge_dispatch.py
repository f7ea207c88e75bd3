"""0.1.5 compatibility: Merge1 is a control node again, and dispatchers written for
0.1.5's protocol (dispatch, wait_all, shutdown) run flows."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from uuid import UUID

import pytest
from support import build, node_id

from quartermaster_engine import (
    AsyncDispatcher,
    ExecutionContext,
    FlowRunner,
    NodeResult,
    SimpleNodeRegistry,
    SyncDispatcher,
)
from quartermaster_engine.dispatchers.legacy import LegacyDispatcher
from quartermaster_engine.runner.flow_runner import NodeConfigError
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_graph import GraphBuilder


def _fan_in(merge: dict[str, Any] | None = None) -> Any:
    spec = {"type": "Merge1", "traverse_in": "AwaitAll", **(merge or {})}
    return build(
        {"Start": "Start1", "A": "Instruction1", "B": "Instruction1", "M": spec, "End": "End1"},
        [("Start", "A"), ("Start", "B"), ("A", "M"), ("B", "M"), ("M", "End")],
    )


def _named(ctx: ExecutionContext) -> NodeResult:
    return NodeResult(output_text=f"{ctx.current_node.name}:{ctx.input_text}")


def test_merge1_joins_its_inputs_with_an_explicit_registry_of_instruction1_only() -> None:
    runner = FlowRunner(_fan_in(), SimpleNodeRegistry({"Instruction1": _named}))
    result = runner.run("q")
    assert result.status is FlowStatus.COMPLETED, result.error
    # One text per line, in the order of the Merge's incoming edges (A, then B).
    assert result.final_output == "A:q\nB:q"


def test_merge1_awaitfirst_takes_the_first_delivery_only() -> None:
    runner = FlowRunner(
        _fan_in({"traverse_in": "AwaitFirst"}), SimpleNodeRegistry({"Instruction1": _named})
    )
    result = runner.run("q")
    assert result.status is FlowStatus.COMPLETED, result.error
    assert result.final_output == "A:q"
    assert result.node_results[node_id("M")].output_text == "A:q"


def test_plain_merge1_needs_no_provider_with_the_installed_llm_pack() -> None:
    # No registry: every installed executor, the LLM pack's Merge1 among them.
    graph = (
        GraphBuilder("g")
        .start()
        .parallel()
        .branch()
        .static("A", text="one")
        .end()
        .branch()
        .static("B", text="two")
        .end()
        .merge("Join")
        .end()
        .build()
    )
    result = FlowRunner(graph).run("x")
    assert result.status is FlowStatus.COMPLETED, result.error
    assert result.final_output == "one\ntwo"


def test_a_merge1_asking_for_an_llm_without_an_llm_executor_is_refused_naming_the_key() -> None:
    runner = FlowRunner(
        _fan_in({"metadata": {"llm_model": "gpt-4o"}}),
        SimpleNodeRegistry({"Instruction1": _named}),
    )
    with pytest.raises(NodeConfigError) as info:
        runner.run("q")
    assert str(info.value) == (
        f"graph test-graph has invalid node settings:\n  node 'M' ({node_id('M')}): "
        "Merge1 asks for an LLM (metadata 'llm_model' is set) but no executor for LLM "
        "merges is installed: install qm-nodes-llm or register a Merge1 executor; "
        "without llm_model, llm_provider, llm_system_instruction, system_instruction "
        "a Merge1 joins its inputs"
    )


def test_a_merge1_asking_for_an_llm_goes_to_the_registrys_merge1_executor() -> None:
    seen: list[str] = []

    def llm_merge(ctx: ExecutionContext) -> NodeResult:
        seen.append(ctx.current_node.name)
        return NodeResult(output_text="combined")

    registry = SimpleNodeRegistry({"Instruction1": _named, "Merge1": llm_merge})
    asked = FlowRunner(_fan_in({"metadata": {"llm_system_instruction": "Combine."}}), registry)
    assert asked.run("q").final_output == "combined"
    plain = FlowRunner(_fan_in(), registry)
    assert plain.run("q").final_output == "A:q\nB:q"
    assert seen == ["M"]


# -- 0.1.5's TaskDispatcher protocol -------------------------------------------------------


class PoolDispatcher015:
    """A dispatcher as a 0.1.5 user wrote it: dispatch, wait_all, shutdown only."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=2)
        self.futures: list[Future[None]] = []
        self.dispatched: list[tuple[UUID, UUID]] = []
        self.threads: set[str] = set()
        self.waits = 0

    def dispatch(
        self, flow_id: UUID, node_id: UUID, execute_fn: Callable[[UUID, UUID], None]
    ) -> None:
        self.dispatched.append((flow_id, node_id))
        self.futures.append(self.pool.submit(execute_fn, flow_id, node_id))

    def wait_all(self) -> None:
        self.waits += 1
        for future in self.futures:
            future.result()
        self.futures.clear()

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)


class InlineDispatcher015:
    def __init__(self) -> None:
        self.calls = 0

    def dispatch(
        self, flow_id: UUID, node_id: UUID, execute_fn: Callable[[UUID, UUID], None]
    ) -> None:
        self.calls += 1
        execute_fn(flow_id, node_id)

    def wait_all(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


def _blocking_registry(threads: set[str] | None = None) -> SimpleNodeRegistry:
    def step(ctx: ExecutionContext) -> NodeResult:
        if threads is not None:
            threads.add(threading.current_thread().name)
        return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")

    return SimpleNodeRegistry({"Instruction1": step})


@pytest.mark.parametrize("make", [PoolDispatcher015, InlineDispatcher015])
def test_a_dispatcher_in_the_0_1_5_protocol_runs_the_flow_like_the_sync_one(make: Any) -> None:
    dispatcher = make()
    runner = FlowRunner(_fan_in(), _blocking_registry(), dispatcher=dispatcher)
    assert isinstance(runner.dispatcher, LegacyDispatcher)
    assert runner.dispatcher.inner is dispatcher
    result = runner.run("q")
    expected = FlowRunner(_fan_in(), _blocking_registry(), dispatcher=SyncDispatcher()).run("q")
    assert result.status is FlowStatus.COMPLETED, result.error
    assert result.final_output == expected.final_output == "A(q)\nB(q)"
    if isinstance(dispatcher, PoolDispatcher015):
        # Both blocking nodes went through dispatch, with the flow's and the node's ids.
        assert sorted(n for _, n in dispatcher.dispatched) == sorted([node_id("A"), node_id("B")])
        assert {f for f, _ in dispatcher.dispatched} == {result.flow_id}
        assert dispatcher.waits == 2
        dispatcher.shutdown()
    else:
        assert dispatcher.calls == 2


def test_blocking_work_runs_in_the_0_1_5_dispatchers_threads() -> None:
    dispatcher = PoolDispatcher015()
    threads: set[str] = set()
    FlowRunner(_fan_in(), _blocking_registry(threads), dispatcher=dispatcher).run("q")
    dispatcher.shutdown()
    assert threads
    assert all(name.startswith("ThreadPoolExecutor") for name in threads)


def test_an_error_raised_by_the_0_1_5_dispatcher_fails_the_node() -> None:
    class Broken(InlineDispatcher015):
        def wait_all(self) -> None:
            raise RuntimeError("queue lost")

    result = FlowRunner(_fan_in(), _blocking_registry(), dispatcher=Broken()).run("q")
    assert result.status is FlowStatus.FAILED
    assert result.error == f"node 'A' ({node_id('A')}): RuntimeError: queue lost"


def test_an_object_that_is_no_dispatcher_is_refused_naming_both_protocols() -> None:
    class Half:
        def dispatch(self, *args: Any) -> None: ...

    with pytest.raises(TypeError) as info:
        FlowRunner(_fan_in(), _blocking_registry(), dispatcher=Half())  # type: ignore[arg-type]
    assert str(info.value) == (
        "dispatcher Half is not a dispatcher: it lacks concurrent, max_concurrency, "
        "run_blocking (TaskDispatcher) and wait_all, shutdown (0.1.5's protocol: "
        "dispatch, wait_all, shutdown)"
    )


@pytest.mark.parametrize("make", [SyncDispatcher, AsyncDispatcher], ids=["sync", "async"])
def test_our_dispatchers_keep_0_1_5s_dispatch_and_wait_all(make: Any) -> None:
    dispatcher = make()
    ran: list[tuple[UUID, UUID, str]] = []
    lock = threading.Lock()

    def execute_fn(flow_id: UUID, node_id: UUID) -> None:
        with lock:
            ran.append((flow_id, node_id, threading.current_thread().name))

    ids = [UUID(int=i) for i in range(4)]
    for node in ids:
        dispatcher.dispatch(ids[0], node, execute_fn)
    dispatcher.wait_all()
    assert sorted(n for _, n, _ in ran) == ids
    assert {f for f, _, _ in ran} == {ids[0]}
    if make is SyncDispatcher:
        assert {t for _, _, t in ran} == {threading.current_thread().name}
    else:
        assert all(t.startswith("qm-async-dispatch") for _, _, t in ran)

    def boom(flow_id: UUID, node_id: UUID) -> None:
        raise ValueError(f"node {node_id.int} broke")

    if make is AsyncDispatcher:
        dispatcher.dispatch(ids[0], ids[1], boom)
        dispatcher.dispatch(ids[0], ids[2], boom)
        with pytest.raises(ExceptionGroup) as info:
            dispatcher.wait_all()
        assert sorted(str(e) for e in info.value.exceptions) == ["node 1 broke", "node 2 broke"]
        dispatcher.wait_all()  # the errors were reported once
    dispatcher.shutdown()


def test_the_merge_executor_is_made_once_per_runner() -> None:
    runner = FlowRunner(_fan_in(), SimpleNodeRegistry({"Instruction1": _named}))
    for _ in range(3):
        assert runner.run("q").final_output == "A:q\nB:q"
    merge = runner.executor_for("Merge1")
    assert merge is not None
    assert runner.executor_for("Merge1") == merge
    assert runner.executors.resolve("Merge1") is merge[0]  # the same object every time
