"""The store contract's clauses with the store under a `FlowRunner`: message
histories a flow committed, a chain, a diamond, a decision and a loop, pausing in one
store instance and resuming in another (a second process), recovering an interrupted
run without running committed nodes again, and two flows at once."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest

from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.dispatchers.async_dispatcher import AsyncDispatcher
from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry
from quartermaster_engine.runner.flow_runner import FlowRunner
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_engine.testing.calls import call, close_store
from quartermaster_engine.testing.contract_base import StoreContractBase, echo_node
from quartermaster_engine.testing.graphs import build_graph, chain_graph, name_id
from quartermaster_engine.types import MessageRole


class RunnerContract(StoreContractBase):
    """The store under the runner, across store instances."""

    def test_get_messages_returns_the_history_a_flow_committed(self, make_store: Any) -> None:
        trace: list[str] = []

        def echo(ctx: ExecutionContext) -> NodeResult:
            trace.append(ctx.current_node.name)
            return echo_node(ctx)

        registry = SimpleNodeRegistry({"echo": echo})
        graph = build_graph(
            {
                "Start": "Start1",
                "A": {"type": "echo", "thought_type": "ContinueThought1"},
                "B": {"type": "echo", "thought_type": "ContinueThought1"},
            },
            [("Start", "A"), ("A", "B")],
        )
        store = make_store()
        result = FlowRunner(graph, registry, store=store).run("hi")
        close_store(store)
        reopened = make_store()
        try:
            history = call(reopened, "get_messages", result.flow_id, name_id("B"))
        finally:
            close_store(reopened)
        assert [(m.role, m.content) for m in history] == [
            (MessageRole.USER, "hi"),
            (MessageRole.ASSISTANT, "A(hi)"),
            (MessageRole.ASSISTANT, "B(A(hi))"),
        ]

    def test_runner_chain_diamond_decision_and_loop(self, make_store: Any) -> None:
        def pick(ctx: ExecutionContext) -> NodeResult:
            n = ctx.memory.get("n", 0) + 1
            return NodeResult(
                output_text=str(n),
                picked_node="again" if n < 3 else "done",
                data={"memory_updates": {"n": n}},
            )

        registry = SimpleNodeRegistry({"echo": echo_node, "pick": pick})
        graph = build_graph(
            {
                "Start": "Start1",
                "A": "echo",
                "B": "echo",
                "J": {"type": "echo", "traverse_in": "AwaitAll"},
                "Loop": {"type": "pick", "traverse_out": "SpawnPickedNode"},
                "End": "End1",
            },
            [
                ("Start", "A"),
                ("Start", "B"),
                ("A", "J"),
                ("B", "J"),
                ("J", "Loop"),
                ("Loop", "J", "again"),
                ("Loop", "End", "done"),
            ],
        )
        store = make_store()
        try:
            runner = FlowRunner(graph, registry, store=store)
            result = runner.run("in")
            assert result.status is FlowStatus.COMPLETED
            assert result.final_output == "3"
            snap = call(store, "load_flow", result.flow_id)
            visits = [(r.node_id, r.visit) for r in snap.records]
            assert visits.count((name_id("J"), 1)) == 1
            assert [v for n, v in visits if n == name_id("Loop")] == [1, 2, 3]
            assert snap.memory == {"n": 3}
            assert snap.pending == []
            assert snap.flow.status is FlowStatus.COMPLETED
        finally:
            close_store(store)

    def test_pause_in_one_store_instance_resume_in_another(self, make_store: Any) -> None:
        def ask(ctx: ExecutionContext) -> NodeResult:
            if ctx.user_input is None:
                return NodeResult(wait_for_user=True, user_prompt="Approve?", user_options=["y"])
            return NodeResult(output_text=f"answer={ctx.user_input}")

        registry = SimpleNodeRegistry({"echo": echo_node, "ask": ask})
        graph = build_graph(
            {"Start": "Start1", "Q": "ask", "After": "echo", "End": "End1"},
            [("Start", "Q"), ("Q", "After"), ("After", "End")],
        )
        first = make_store()
        try:
            paused = FlowRunner(graph, registry, store=first).run("in")
        finally:
            close_store(first)
        assert paused.status is FlowStatus.PAUSED
        second = make_store()
        try:
            runner = FlowRunner(chain_graph(3), registry, store=second)
            waiting = runner.get_result(paused.flow_id)
            assert [(w.node_name, w.prompt, w.options) for w in waiting.waiting] == [
                ("Q", "Approve?", ["y"])
            ]
            done = runner.resume(paused.flow_id, "yes")
        finally:
            close_store(second)
        assert done.status is FlowStatus.COMPLETED
        assert done.final_output == "After(answer=yes)"

    def test_interrupted_run_recovers_without_rerunning_committed_nodes(
        self, make_store: Any
    ) -> None:
        ran: list[str] = []
        release = asyncio.Event()

        async def work(ctx: ExecutionContext) -> NodeResult:
            ran.append(ctx.current_node.name)
            if ctx.current_node.name == "n3" and not release.is_set():
                await asyncio.sleep(60)  # interrupted here
            return echo_node(ctx)

        registry = SimpleNodeRegistry({"echo": work})
        graph = chain_graph(8)
        store = make_store()

        async def interrupted() -> UUID:
            runner = FlowRunner(graph, registry, store=store)
            task = asyncio.ensure_future(runner.arun("in"))
            for _ in range(2000):  # a polling wait: the executor runs in the same loop
                if "n3" in ran:
                    break
                await asyncio.sleep(0.005)
            flow_id = runner.active_flows[0]
            task.cancel()  # the process "dies" with n3 in flight
            with pytest.raises(asyncio.CancelledError):
                await task
            return flow_id

        try:
            flow_id = asyncio.run(interrupted())
        finally:
            close_store(store)
        assert ran == ["n0", "n1", "n2", "n3"]
        release.set()
        reopened = make_store()
        try:
            assert call(reopened, "get_flow", flow_id).status is FlowStatus.RUNNING
            result = FlowRunner(chain_graph(3), registry, store=reopened).recover(flow_id)
        finally:
            close_store(reopened)
        assert ran == ["n0", "n1", "n2", "n3", "n3", "n4", "n5"]
        assert result.status is FlowStatus.COMPLETED
        assert result.final_output == "n5(n4(n3(n2(n1(n0(in))))))"

    def test_two_flows_at_once_on_one_store(self, make_store: Any) -> None:
        async def slow_echo(ctx: ExecutionContext) -> NodeResult:
            await asyncio.sleep(0.001)
            return echo_node(ctx)

        registry = SimpleNodeRegistry({"echo": slow_echo})
        store = make_store()

        async def both() -> list[Any]:
            runner = FlowRunner(
                chain_graph(12), registry, store=store, dispatcher=AsyncDispatcher()
            )
            return list(await asyncio.gather(runner.arun("one"), runner.arun("two")))

        try:
            results = asyncio.run(both())
            expected = "n9(n8(n7(n6(n5(n4(n3(n2(n1(n0({}))))))))))"
            assert [r.final_output for r in results] == [
                expected.format("one"),
                expected.format("two"),
            ]
            for result in results:
                snap = call(store, "load_flow", result.flow_id)
                assert len(snap.records) == 12
        finally:
            close_store(store)
