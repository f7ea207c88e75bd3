"""The dispatcher contract suite: what every dispatcher must do, as pytest tests.

Subclass `DispatcherContract` and provide a ``dispatcher`` fixture. The suite
runs real flows through a `FlowRunner` on the in-memory store: exact joins,
blocking and async executors side by side, stop, retries, several flows at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.events import FlowEvent, TokenGenerated
from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry
from quartermaster_engine.runner.flow_runner import FlowRunner
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_engine.testing.graphs import build_graph, chain_graph


def _fan(width: int, join_type: str = "join") -> Any:
    nodes: dict[str, Any] = {"Start": "Start1"}
    nodes.update({f"b{i}": "branch" for i in range(width)})
    nodes["J"] = {"type": join_type, "traverse_in": "AwaitAll"}
    nodes["End"] = "End1"
    edges = [("Start", f"b{i}") for i in range(width)]
    edges += [(f"b{i}", "J") for i in range(width)]
    edges.append(("J", "End"))
    return build_graph(nodes, edges)


class DispatcherContract:
    """Inherit this in a ``Test...`` class and provide ``dispatcher``."""

    @pytest.fixture
    def dispatcher(self) -> Any:
        raise NotImplementedError("provide a dispatcher fixture")

    def test_chain_outputs_flow_in_order(self, dispatcher: Any) -> None:
        def echo(ctx: ExecutionContext) -> str:
            return f"{ctx.current_node.name}({ctx.input_text})"

        runner = FlowRunner(
            chain_graph(6), SimpleNodeRegistry({"echo": echo}), dispatcher=dispatcher
        )
        result = runner.run("in")
        assert result.status is FlowStatus.COMPLETED
        assert result.final_output == "n3(n2(n1(n0(in))))"

    @pytest.mark.parametrize("blocking", [True, False], ids=["def", "async-def"])
    def test_fan_out_fan_in_joins_once_with_every_branch(
        self, dispatcher: Any, blocking: bool
    ) -> None:
        joins: list[str] = []
        lock = threading.Lock()

        def branch(ctx: ExecutionContext) -> str:
            time.sleep(0.001)
            return ctx.current_node.name

        async def abranch(ctx: ExecutionContext) -> str:
            await asyncio.sleep(0.001)
            return ctx.current_node.name

        def join(ctx: ExecutionContext) -> str:
            with lock:
                joins.append(ctx.input_text)
            return str(len(ctx.predecessor_outputs))

        registry = SimpleNodeRegistry({"branch": branch if blocking else abranch, "join": join})
        result = FlowRunner(_fan(100), registry, dispatcher=dispatcher).run("x")
        assert result.final_output == "100"
        assert joins == ["\n".join(f"b{i}" for i in range(100))]

    def test_blocking_and_async_executors_both_run(self, dispatcher: Any) -> None:
        def blocking(ctx: ExecutionContext) -> str:
            time.sleep(0.01)
            return "blocking"

        async def nonblocking(ctx: ExecutionContext) -> str:
            await asyncio.sleep(0.01)
            return "async"

        graph = build_graph(
            {
                "Start": "Start1",
                "B": "blocking",
                "A": "async",
                "J": {"type": "join", "traverse_in": "AwaitAll"},
            },
            [("Start", "B"), ("Start", "A"), ("B", "J"), ("A", "J")],
        )
        registry = SimpleNodeRegistry(
            {"blocking": blocking, "async": nonblocking, "join": lambda ctx: ctx.input_text}
        )
        result = FlowRunner(graph, registry, dispatcher=dispatcher).run("x")
        assert result.node_results[graph.nodes[-1].id].output_text == "blocking\nasync"

    def test_tokens_of_one_node_arrive_in_order(self, dispatcher: Any) -> None:
        def stream(ctx: ExecutionContext) -> NodeResult:
            for i in range(200):
                ctx.emit_token(str(i))
            return NodeResult(output_text="streamed")

        events: list[FlowEvent] = []
        runner = FlowRunner(
            chain_graph(3, "stream"),
            SimpleNodeRegistry({"stream": stream}),
            dispatcher=dispatcher,
            on_event=events.append,
        )
        runner.run("x")
        tokens = [e.token for e in events if isinstance(e, TokenGenerated)]
        assert tokens == [str(i) for i in range(200)]
        # Tokens are live only: they carry the number of the event before them, so
        # the numbers of the other (logged) events have no gaps.
        logged = [e for e in events if not isinstance(e, TokenGenerated)]
        assert [e.seq for e in logged] == list(range(1, len(logged) + 1))
        last = 0
        for event in events:
            if isinstance(event, TokenGenerated):
                assert event.seq == last
            last = event.seq

    def test_stop_in_the_middle(self, dispatcher: Any) -> None:
        started = threading.Event()
        seen_cancel: list[bool] = []

        def wait(ctx: ExecutionContext) -> str:
            started.set()
            deadline = time.monotonic() + 10
            while not ctx.cancelled and time.monotonic() < deadline:
                time.sleep(0.005)
            seen_cancel.append(ctx.cancelled)
            return "stopped"

        after: list[str] = []

        def note(ctx: ExecutionContext) -> str:
            after.append(ctx.current_node.name)
            return "after"

        registry = SimpleNodeRegistry({"wait": wait, "after": note})
        graph = build_graph(
            {"Start": "Start1", "W": "wait", "After": "after"}, [("Start", "W"), ("W", "After")]
        )
        runner = FlowRunner(graph, registry, dispatcher=dispatcher)
        results: list[Any] = []
        thread = threading.Thread(target=lambda: results.append(runner.run("x")))
        thread.start()
        assert started.wait(10)
        runner.stop(runner.active_flows[0])
        thread.join(15)
        deadline = time.monotonic() + 10
        while not seen_cancel and time.monotonic() < deadline:
            time.sleep(0.005)
        assert results[0].status is FlowStatus.STOPPED
        assert seen_cancel == [True]
        assert after == []

    def test_retry_of_a_raising_blocking_executor(self, dispatcher: Any) -> None:
        attempts: list[int] = []

        def flaky(ctx: ExecutionContext) -> str:
            attempts.append(ctx.attempt)
            if ctx.attempt < 3:
                raise ConnectionError("try again")
            return "third time"

        graph = build_graph(
            {
                "Start": "Start1",
                "F": {
                    "type": "flaky",
                    "error_handling": "Retry",
                    "max_retries": 3,
                    "retry_delay": 0.001,
                },
                "End": "End1",
            },
            [("Start", "F"), ("F", "End")],
        )
        runner = FlowRunner(graph, SimpleNodeRegistry({"flaky": flaky}), dispatcher=dispatcher)
        result = runner.run("x")
        assert attempts == [1, 2, 3]
        assert result.final_output == "third time"

    def test_several_flows_on_one_runner_keep_their_own_work(self, dispatcher: Any) -> None:
        def branch(ctx: ExecutionContext) -> str:
            time.sleep(0.001)
            return f"{ctx.input_text}:{ctx.current_node.name}"

        registry = SimpleNodeRegistry({"branch": branch, "join": lambda ctx: ctx.input_text})
        runner = FlowRunner(_fan(20), registry, dispatcher=dispatcher)

        async def many() -> list[Any]:
            return list(await asyncio.gather(*(runner.arun(f"f{i}") for i in range(5))))

        results = asyncio.run(many())
        for i, result in enumerate(results):
            assert result.final_output == "\n".join(f"f{i}:b{j}" for j in range(20))

    def test_shutdown_twice_is_harmless(self, dispatcher: Any) -> None:
        dispatcher.shutdown()
        dispatcher.shutdown()
