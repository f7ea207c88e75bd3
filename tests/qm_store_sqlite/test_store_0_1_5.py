"""0.1.5's `SQLiteStore` (``quartermaster_engine.stores.sqlite_store``): its documented
methods are plain calls that return values, in scripts and inside running event
loops, while runners on it keep the async store underneath."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from quartermaster_engine import ExecutionContext, FlowRunner, NodeResult, SimpleNodeRegistry
from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus
from quartermaster_engine.stores.sqlite_store import SQLiteStore
from quartermaster_engine.testing import StoreContract, build_graph
from quartermaster_engine.testing.graphs import name_id
from quartermaster_engine.types import Message, MessageRole


class TestLegacySQLiteStore(StoreContract):
    """The whole conformance kit, through 0.1.5's class."""

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Callable[[], Any]:
        return lambda: SQLiteStore(db_path=tmp_path / "flows.db")


@pytest.fixture
def store(tmp_path: Path) -> Any:
    opened = SQLiteStore(db_path=tmp_path / "agent.db")
    yield opened
    opened.close()


def test_memory_methods_return_values(store: SQLiteStore) -> None:
    flow = uuid4()
    assert store.save_memory(flow, "user", {"name": "Ada", "tags": ["a"]}) is None
    store.save_memory(flow, "count", 3)
    assert store.get_memory(flow, "user") == {"name": "Ada", "tags": ["a"]}
    assert store.get_memory(flow, "missing") is None
    assert store.get_all_memory(flow) == {"user": {"name": "Ada", "tags": ["a"]}, "count": 3}
    store.delete_memory(flow, "count")
    assert store.get_all_memory(flow) == {"user": {"name": "Ada", "tags": ["a"]}}


def test_record_and_message_methods_return_values(store: SQLiteStore) -> None:
    flow, node = uuid4(), uuid4()
    record = NodeExecution(node_id=node, status=NodeStatus.FINISHED, result="done")
    store.save_node_execution(flow, node, record)
    got = store.get_node_execution(flow, node)
    assert got is not None
    assert (got.node_id, got.status, got.result) == (node, NodeStatus.FINISHED, "done")
    assert list(store.get_all_node_executions(flow)) == [node]
    assert store.get_node_execution(flow, uuid4()) is None

    store.save_messages(flow, node, [Message(role=MessageRole.USER, content="hi")])
    store.append_message(flow, node, Message(role=MessageRole.ASSISTANT, content="hello"))
    assert [(m.role, m.content) for m in store.get_messages(flow, node)] == [
        (MessageRole.USER, "hi"),
        (MessageRole.ASSISTANT, "hello"),
    ]
    assert store.get_messages(flow, uuid4()) == []

    store.clear_flow(flow)
    assert store.get_node_execution(flow, node) is None
    assert store.get_messages(flow, node) == []


def test_values_outlive_the_store_object(tmp_path: Path) -> None:
    flow = uuid4()
    first = SQLiteStore(db_path=tmp_path / "agent.db")
    first.save_memory(flow, "kept", [1, 2])
    first.close()
    second = SQLiteStore(str(tmp_path / "agent.db"))
    try:
        assert second.get_memory(flow, "kept") == [1, 2]
    finally:
        second.close()


def test_plain_calls_work_inside_a_running_event_loop(store: SQLiteStore) -> None:
    # A notebook cell: the loop is running and the user calls the store directly.
    flow = uuid4()

    async def cell() -> tuple[Any, Any]:
        store.save_memory(flow, "k", {"v": 1})
        store.append_message(flow, flow, Message(role=MessageRole.USER, content="q"))
        return store.get_memory(flow, "k"), [m.content for m in store.get_messages(flow, flow)]

    assert asyncio.run(cell()) == ({"v": 1}, ["q"])
    assert store.get_memory(flow, "k") == {"v": 1}


def _graph() -> Any:
    return build_graph(
        {"Start": "Start1", "Write": "write", "End": "End1"},
        [("Start", "Write"), ("Write", "End")],
    )


def _write(ctx: ExecutionContext) -> NodeResult:
    return NodeResult(
        output_text=f"wrote {ctx.input_text}",
        data={"memory_updates": {"last": ctx.input_text}},
    )


def test_a_runner_on_it_and_plain_reads_of_what_the_flow_stored(store: SQLiteStore) -> None:
    runner = FlowRunner(_graph(), SimpleNodeRegistry({"write": _write}), store=store)
    result = runner.run("hello")
    assert (result.success, result.final_output) == (True, "wrote hello")
    assert store.get_memory(result.flow_id, "last") == "hello"
    record = store.get_node_execution(result.flow_id, name_id("Write"))
    assert record is not None
    assert (record.status, record.result) == (NodeStatus.FINISHED, "wrote hello")


def test_an_async_runner_on_it_and_plain_reads_inside_the_loop(store: SQLiteStore) -> None:
    runner = FlowRunner(_graph(), SimpleNodeRegistry({"write": _write}), store=store)

    async def app() -> tuple[str, Any]:
        result = await runner.arun("from a loop")
        return result.final_output, store.get_all_memory(result.flow_id)

    assert asyncio.run(app()) == ("wrote from a loop", {"last": "from a loop"})


@pytest.mark.timeout(60)
def test_an_executor_calls_it_in_a_flow_run_from_inside_a_running_loop(
    store: SQLiteStore,
) -> None:
    # run() inside a notebook's loop runs the flow on the engine's background loop;
    # an executor calling the store's plain methods there must not deadlock it.
    async def remember(ctx: ExecutionContext) -> NodeResult:
        store.save_memory(ctx.flow_id, "seen", ctx.input_text)
        return NodeResult(output_text=f"stored {store.get_memory(ctx.flow_id, 'seen')}")

    graph = build_graph(
        {"Start": "Start1", "Write": "write", "End": "End1"},
        [("Start", "Write"), ("Write", "End")],
    )
    runner = FlowRunner(graph, SimpleNodeRegistry({"write": remember}), store=store)

    async def cell() -> str:
        return runner.run("in a cell").final_output

    assert asyncio.run(cell()) == "stored in a cell"
    assert runner.run("in a script").final_output == "stored in a script"
