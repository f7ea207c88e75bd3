"""Every code example of the quartermaster-engine 0.1.5 README that makes no real LLM call,
run as written (only print() is captured). The LLM node has a local stand-in executor."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest


def test_run_a_simple_graph(capsys: pytest.CaptureFixture[str]) -> None:
    from uuid import uuid4

    from quartermaster_engine import FlowRunner, InMemoryStore  # noqa: F401
    from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry  # noqa: F401
    from quartermaster_graph import GraphEdge, GraphNode, GraphSpec, NodeType

    # 1. Define the graph
    start_id, process_id, end_id = uuid4(), uuid4(), uuid4()

    graph = GraphSpec(
        id=uuid4(),
        agent_id=uuid4(),
        start_node_id=start_id,
        nodes=[
            GraphNode(id=start_id, type=NodeType.START, name="Start"),
            GraphNode(
                id=process_id,
                type=NodeType.INSTRUCTION,
                name="Process",
                metadata={"llm_system_instruction": "Summarize the input.", "llm_model": "gpt-4o"},
            ),
            GraphNode(id=end_id, type=NodeType.END, name="End"),
        ],
        edges=[
            GraphEdge(source_id=start_id, target_id=process_id),
            GraphEdge(source_id=process_id, target_id=end_id),
        ],
    )

    # 2. Register node executors
    registry = SimpleNodeRegistry()
    # registry.register("Instruction1", my_instruction_executor)

    # 3. Run the flow
    runner = FlowRunner(graph=graph, node_registry=registry)
    result = runner.run("Please summarize this article about AI safety.")

    print(result.success)  # True/False
    print(result.final_output)  # The final text output
    print(result.duration_seconds)

    out = capsys.readouterr().out.splitlines()
    # No Instruction1 executor is registered: the flow fails and says why.
    assert out[:2] == ["False", ""]
    assert float(out[2]) >= 0
    assert result.error is not None
    assert result.error.startswith("no executor for node type 'Instruction1' (node 'Process'")


class MyInstructionExecutor:
    """The README's custom executor, verbatim."""

    async def execute(self, context):  # type: ignore[no-untyped-def]
        from quartermaster_engine.nodes import NodeResult

        system_instruction = context.get_meta("llm_system_instruction", "")  # noqa: F841
        # Call your LLM here...
        response_text = "Generated response"

        # Stream tokens in real time
        for token in response_text.split():
            context.emit_token(token + " ")

        return NodeResult(
            success=True,
            data={"model": "gpt-4o"},
            output_text=response_text,
        )


class MyDecisionExecutor:
    async def execute(self, context):  # type: ignore[no-untyped-def]
        from quartermaster_engine.nodes import NodeResult

        return NodeResult(success=True, data={}, picked_node="billing", output_text="billing")


def support_agent():  # type: ignore[no-untyped-def]
    from quartermaster_graph import GraphBuilder

    return (
        GraphBuilder("Support Agent")
        .start()
        .instruction("Classify", model="gpt-4o")
        .decision("Route", options=["billing", "technical"])
        .on("billing")
        .instruction("Handle billing")
        .end()
        .on("technical")
        .instruction("Handle technical")
        .end()
        .build()
    )


def test_graph_builder_example_and_custom_executors() -> None:
    from quartermaster_engine import FlowRunner
    from quartermaster_engine.nodes import SimpleNodeRegistry

    graph = support_agent()

    registry = SimpleNodeRegistry()
    runner = FlowRunner(graph=graph, node_registry=registry)
    result = runner.run("I need help with my invoice")
    assert result.success is False  # no LLM executors registered

    registry.register("Instruction1", MyInstructionExecutor())
    registry.register("Decision1", MyDecisionExecutor())
    assert registry.list_types() == ["Instruction1", "Decision1"]
    result = runner.run("I need help with my invoice")
    assert result.success is True
    assert result.final_output == "Generated response"
    names = {n.id: n.name for n in graph.nodes}
    ran = [names[node] for node in result.node_results]
    assert sorted(ran) == ["Classify", "End", "Handle billing", "Route", "Start"]


def test_stream_events_in_real_time(capsys: pytest.CaptureFixture[str]) -> None:
    from quartermaster_engine import (
        FlowError,
        FlowEvent,
        FlowRunner,
        NodeFinished,
        NodeStarted,
        TokenGenerated,
    )
    from quartermaster_engine.nodes import SimpleNodeRegistry

    graph = support_agent()
    registry = SimpleNodeRegistry()
    registry.register("Instruction1", MyInstructionExecutor())
    registry.register("Decision1", MyDecisionExecutor())

    def handle_event(event: FlowEvent):  # type: ignore[no-untyped-def]
        if isinstance(event, NodeStarted):
            print(f"[START] {event.node_name} ({event.node_type})")
        elif isinstance(event, TokenGenerated):
            print(event.token, end="", flush=True)
        elif isinstance(event, NodeFinished):
            print(f"\n[DONE] Node finished: {event.result[:50]}...")
        elif isinstance(event, FlowError):
            print(f"[ERROR] {event.error} (recoverable={event.recoverable})")

    runner = FlowRunner(graph=graph, node_registry=registry, on_event=handle_event)
    result = runner.run("Hello!")
    assert result.success is True
    out = capsys.readouterr().out
    assert out.splitlines()[:4] == [
        "[START] Start (NodeType.START)",
        "",
        "[DONE] Node finished: Hello!...",
        "[START] Classify (NodeType.INSTRUCTION)",
    ]
    assert "Generated response \n[DONE] Node finished: Generated response..." in out


def test_async_execution(capsys: pytest.CaptureFixture[str]) -> None:
    from quartermaster_engine import FlowRunner, TokenGenerated
    from quartermaster_engine.nodes import SimpleNodeRegistry

    graph = support_agent()
    registry = SimpleNodeRegistry()
    registry.register("Instruction1", MyInstructionExecutor())
    registry.register("Decision1", MyDecisionExecutor())

    async def run_flow():  # type: ignore[no-untyped-def]
        runner = FlowRunner(graph=graph, node_registry=registry)
        async for event in runner.run_async("Hello!"):
            if isinstance(event, TokenGenerated):
                print(event.token, end="", flush=True)

    asyncio.run(run_flow())
    assert capsys.readouterr().out == "Generated response " * 2


def test_flow_runner_reference_example() -> None:
    from quartermaster_engine import FlowRunner, InMemoryStore
    from quartermaster_engine.dispatchers.sync_dispatcher import SyncDispatcher
    from quartermaster_engine.messaging.context_manager import ContextManager
    from quartermaster_engine.nodes import SimpleNodeRegistry

    spec = support_agent()
    registry = SimpleNodeRegistry()
    events = []
    handle_event = events.append
    runner = FlowRunner(
        graph=spec,  # GraphSpec from quartermaster-graph
        node_registry=registry,  # Maps node types to executors
        store=InMemoryStore(),  # Execution state storage
        dispatcher=SyncDispatcher(),  # How branches are dispatched
        context_manager=ContextManager(),  # LLM context window management
        on_event=handle_event,  # Real-time event callback
    )
    result = runner.run("x")
    assert result.flow_id == events[0].flow_id
    assert isinstance(result.node_results, type(result.node_results))


def test_error_handling_example() -> None:
    from quartermaster_engine.types import ErrorStrategy, GraphNode, NodeType

    node = GraphNode(
        type=NodeType.INSTRUCTION,
        name="Unreliable API",
        error_handling=ErrorStrategy.RETRY,
        max_retries=3,
        retry_delay=2.0,
        timeout=30.0,
    )
    assert (node.max_retries, node.retry_delay, node.timeout) == (3, 2.0, 30.0)


def test_memory_examples() -> None:
    from quartermaster_engine import FlowMemory, InMemoryPersistence, InMemoryStore

    my_flow_id = uuid4()
    agent_id = uuid4()
    store = InMemoryStore()
    memory = FlowMemory(flow_id=my_flow_id, store=store)

    memory.set("user_name", "Alice")
    memory.set("preferences", {"language": "en"})

    name = memory.get("user_name")  # "Alice"
    all_data = memory.get_all()  # {"user_name": "Alice", ...}
    keys = memory.list_keys()  # ["user_name", "preferences"]
    memory.delete("preferences")
    memory.clear()
    assert (name, all_data, keys) == (
        "Alice",
        {"user_name": "Alice", "preferences": {"language": "en"}},
        ["user_name", "preferences"],
    )

    persistence = InMemoryPersistence()

    persistence.write(agent_id, "user_pref", "dark_mode")
    value = persistence.read(agent_id, "user_pref")  # "dark_mode"
    persistence.update(agent_id, "user_pref", "light_mode")

    results = persistence.search(agent_id, "pref")  # Substring search
    keys = persistence.list_keys(agent_id)  # ["user_pref"]
    persistence.delete(agent_id, "user_pref")
    assert (value, [r.value for r in results], keys) == ("dark_mode", ["light_mode"], ["user_pref"])


def test_redis_store_sketch_with_plain_def_methods_works() -> None:
    """0.1.5's custom-store sketch: plain ``def`` methods of the ExecutionStore contract."""
    from quartermaster_engine import FlowRunner, InMemoryStore
    from quartermaster_engine.nodes import SimpleNodeRegistry

    class RedisStore:
        def __init__(self) -> None:
            self.data = InMemoryStore()

        def save_node_execution(self, flow_id, node_id, execution):  # type: ignore[no-untyped-def]
            self.data.save_node_execution(flow_id, node_id, execution)

        def get_node_execution(self, flow_id, node_id):  # type: ignore[no-untyped-def]
            return self.data.get_node_execution(flow_id, node_id)

        def get_all_node_executions(self, flow_id):  # type: ignore[no-untyped-def]
            return self.data.get_all_node_executions(flow_id)

        def save_memory(self, flow_id, key, value):  # type: ignore[no-untyped-def]
            self.data.save_memory(flow_id, key, value)

        def get_memory(self, flow_id, key):  # type: ignore[no-untyped-def]
            return self.data.get_memory(flow_id, key)

        def get_all_memory(self, flow_id):  # type: ignore[no-untyped-def]
            return self.data.get_all_memory(flow_id)

        def delete_memory(self, flow_id, key):  # type: ignore[no-untyped-def]
            self.data.delete_memory(flow_id, key)

        def save_messages(self, flow_id, node_id, messages):  # type: ignore[no-untyped-def]
            self.data.save_messages(flow_id, node_id, messages)

        def get_messages(self, flow_id, node_id):  # type: ignore[no-untyped-def]
            return self.data.get_messages(flow_id, node_id)

        def append_message(self, flow_id, node_id, message):  # type: ignore[no-untyped-def]
            self.data.append_message(flow_id, node_id, message)

        def clear_flow(self, flow_id):  # type: ignore[no-untyped-def]
            self.data.clear_flow(flow_id)

    store = RedisStore()
    registry = SimpleNodeRegistry()
    registry.register("Instruction1", MyInstructionExecutor())
    registry.register("Decision1", MyDecisionExecutor())
    graph = support_agent()
    result = FlowRunner(graph=graph, node_registry=registry, store=store).run("invoice")
    assert result.final_output == "Generated response"
    executions = store.get_all_node_executions(result.flow_id)
    assert sorted(graph.get_node(n).name for n in executions) == [
        "Classify",
        "End",
        "Handle billing",
        "Route",
        "Start",
    ]
