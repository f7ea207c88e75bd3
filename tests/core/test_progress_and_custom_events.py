"""emit_progress / emit_custom and current_context(): events from inside executors
and the tools they call, delivered in order and written to the durable event log."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import quartermaster_engine
from qm_store_sqlite import SQLiteStore
from quartermaster_engine import (
    CustomEvent,
    ExecutionContext,
    FlowEvent,
    FlowRunner,
    NodeResult,
    ProgressEvent,
    SimpleNodeRegistry,
    ToolCallFinished,
    ToolCallStarted,
    current_context,
    event_from_dict,
)
from quartermaster_engine.dispatchers import AsyncDispatcher
from quartermaster_graph import GraphNode, GraphSpec

from .support import build, node_id


def graph() -> GraphSpec:
    return build(
        {"Start": "Start1", "Work": "work", "End": "End1"}, [("Start", "Work"), ("Work", "End")]
    )


def a_tool(query: str) -> str:
    """A tool that knows nothing of the engine but current_context()."""
    ctx = current_context()
    assert ctx is not None
    ctx.emit_progress("searching", percent=0.5, query=query)
    ctx.emit_custom("docs", {"count": 3})
    return query.upper()


class AsyncWork:
    async def execute(self, context: ExecutionContext) -> NodeResult:
        context.emit_progress("start")
        await asyncio.sleep(0)
        return NodeResult(success=True, output_text=a_tool("hi"))


class BlockingWork:
    def execute(self, context: ExecutionContext) -> NodeResult:
        assert current_context() is context
        return NodeResult(success=True, output_text=a_tool(threading.current_thread().name))


def run(executor: Any, **kwargs: Any) -> tuple[list[FlowEvent], str]:
    registry = SimpleNodeRegistry()
    registry.register("work", executor)
    events: list[FlowEvent] = []
    result = FlowRunner(graph(), registry, on_event=events.append, **kwargs).run("in")
    assert result.success, result.error
    return events, result.final_output


def app_events(events: list[FlowEvent]) -> list[tuple[str, Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for e in events:
        if isinstance(e, ProgressEvent):
            out.append(("progress", e.node_id, e.node_name, e.message, e.percent, e.data))
        elif isinstance(e, CustomEvent):
            out.append(("custom", e.node_id, e.node_name, e.name, e.payload))
    return out


def test_async_executor_and_its_tool_emit_progress_and_custom_events_in_order():
    events, output = run(AsyncWork())
    work = node_id("Work")
    assert output == "HI"
    assert app_events(events) == [
        ("progress", work, "Work", "start", None, {}),
        ("progress", work, "Work", "searching", 0.5, {"query": "hi"}),
        ("custom", work, "Work", "docs", {"count": 3}),
    ]
    assert [e.type for e in events] == [
        "FlowStarted",
        "NodeStarted",
        "NodeFinished",
        "NodeStarted",
        "ProgressEvent",
        "ProgressEvent",
        "CustomEvent",
        "NodeFinished",
        "NodeStarted",
        "NodeFinished",
        "FlowFinished",
    ]
    assert [e.seq for e in events] == list(range(1, 12))


@pytest.mark.parametrize("timeout", [None, 5.0])
def test_blocking_executor_in_a_worker_thread_sees_its_context(timeout):
    node = {"type": "work", "timeout": timeout}
    registry = SimpleNodeRegistry()
    registry.register("work", BlockingWork())
    events: list[FlowEvent] = []
    spec = build(
        {"Start": "Start1", "Work": node, "End": "End1"}, [("Start", "Work"), ("Work", "End")]
    )
    result = FlowRunner(spec, registry, dispatcher=AsyncDispatcher(), on_event=events.append).run(
        "in"
    )
    assert result.success, result.error
    assert [e[3] for e in app_events(events)] == ["searching", "docs"]
    assert current_context() is None


def test_current_context_is_none_outside_a_node_and_after_a_run():
    assert current_context() is None
    run(AsyncWork())
    assert current_context() is None


def test_a_context_not_made_by_a_runner_emits_nothing():
    node = GraphNode(type="work", name="Alone")
    spec = GraphSpec(name="g", start_node_id=node.id, nodes=[node], edges=[])
    ctx = ExecutionContext(flow_id=node.id, node_id=node.id, graph=spec, current_node=node)
    ctx.emit_progress("x", percent=0.25, a=1)
    ctx.emit_custom("ping")


def test_percent_outside_0_to_1_is_refused_naming_it():
    node = GraphNode(type="work", name="Alone")
    spec = GraphSpec(name="g", start_node_id=node.id, nodes=[node], edges=[])
    ctx = ExecutionContext(flow_id=node.id, node_id=node.id, graph=spec, current_node=node)
    with pytest.raises(
        ValueError, match=r"^emit_progress\(\): percent must be from 0 to 1, got 50$"
    ):
        ctx.emit_progress("x", percent=50)


def test_events_are_in_the_durable_log_and_read_back(tmp_path):
    store = SQLiteStore(tmp_path / "flows.db")
    registry = SimpleNodeRegistry()
    registry.register("work", AsyncWork())
    runner = FlowRunner(graph(), registry, store=store)
    result = runner.run("in")
    logged = asyncio.run(store.read_events(result.flow_id))
    mine = [e for e in logged if isinstance(e, ProgressEvent | CustomEvent)]
    assert [(e.type, e.node_name) for e in mine] == [
        ("ProgressEvent", "Work"),
        ("ProgressEvent", "Work"),
        ("CustomEvent", "Work"),
    ]
    assert mine[1].data == {"query": "hi"}
    assert mine[2].payload == {"count": 3}
    assert event_from_dict(mine[1].to_dict()) == mine[1]


def test_tool_call_events_are_exported_by_the_engine_and_the_llm_pack():
    qm_nodes_llm_events = pytest.importorskip("qm_nodes_llm.events")
    assert quartermaster_engine.ToolCallStarted is qm_nodes_llm_events.ToolCallStarted
    assert quartermaster_engine.ToolCallFinished is qm_nodes_llm_events.ToolCallFinished


def test_tool_call_events_from_any_executor_round_trip():
    class Tools:
        def execute(self, context: ExecutionContext) -> NodeResult:
            context.emit(
                ToolCallStarted(
                    flow_id=context.flow_id,
                    node_id=context.node_id,
                    node_name="Work",
                    tool="search",
                    call="c1",
                    arguments={"q": "x"},
                )
            )
            context.emit(
                ToolCallFinished(
                    flow_id=context.flow_id, node_id=context.node_id, tool="search", result="X"
                )
            )
            return NodeResult(success=True, output_text="done")

    events, _ = run(Tools())
    started, finished = [e for e in events if isinstance(e, ToolCallStarted | ToolCallFinished)]
    assert (started.tool, started.call, started.arguments, finished.result) == (
        "search",
        "c1",
        {"q": "x"},
        "X",
    )
    assert event_from_dict(started.to_dict()) == started
