"""Child flows run from a node, per-agent persistent memory, and node checks before a run."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support import Trace, build, chain, node_id

from quartermaster_engine import (
    ExecutionContext,
    FlowRunner,
    FlowStarted,
    FlowStatus,
    InMemoryStore,
    NodeConfigError,
    NodeResult,
    SimpleNodeRegistry,
    UnknownNodeTypeError,
)
from quartermaster_graph import GraphNode


def ask(ctx: ExecutionContext) -> NodeResult:
    if ctx.user_input is None:
        return NodeResult(wait_for_user=True, user_prompt="Name?")
    return NodeResult(output_text=f"hello {ctx.user_input}")


CHILD = build(
    {"Start": "Start1", "Ask": "ask", "End": "End1"},
    [("Start", "Ask"), ("Ask", "End")],
    name="child",
)


async def sub_flow(ctx: ExecutionContext) -> NodeResult:
    """A minimal sub-graph executor: runs CHILD, forwards a pause, resumes it."""
    child_id = ctx.child_flow_id()
    if ctx.user_input is None:
        result = await ctx.run_child(CHILD, ctx.input_text)
    else:
        result = await ctx.resume_child(child_id, ctx.user_input)
    if result.paused:
        return NodeResult(wait_for_user=True, user_prompt=result.waiting[0].prompt)
    return NodeResult(output_text=result.final_output, data={"child": str(result.flow_id)})


def parent_graph() -> Any:
    return build(
        {"Start": "Start1", "Sub": "sub", "After": "step", "End": "End1"},
        [("Start", "Sub"), ("Sub", "After"), ("After", "End")],
        name="parent",
    )


def test_a_child_flow_shares_store_and_listeners_and_its_pause_reaches_the_parent() -> None:
    store = InMemoryStore()
    trace = Trace().on("step").on("ask", ask).on("sub", sub_flow)
    runner = FlowRunner(parent_graph(), trace.registry, store=store, on_event=trace.events.append)
    paused = runner.run("in")
    assert paused.status is FlowStatus.PAUSED
    assert [(w.node_name, w.prompt) for w in paused.waiting] == [("Sub", "Name?")]
    started = trace.events_of(FlowStarted)
    child_id = started[1].flow_id
    assert [(e.graph_name, e.parent_flow_id) for e in started] == [
        ("parent", None),
        ("child", paused.flow_id),
    ]
    child_events = [e for e in trace.events if e.flow_id == child_id]
    assert {e.parent_flow_id for e in child_events} == {paused.flow_id}
    assert store.get_flow(child_id).status is FlowStatus.PAUSED

    done = runner.resume(paused.flow_id, "Ada")
    assert done.status is FlowStatus.COMPLETED
    assert done.final_output == "After(hello Ada)"
    assert store.get_flow(child_id).status is FlowStatus.COMPLETED
    assert done.node_results[node_id("Sub")].data == {"child": str(child_id)}


def test_stopping_the_parent_stops_its_running_child() -> None:
    entered = asyncio.Event()

    async def slow(ctx: ExecutionContext) -> str:
        entered.set()
        await asyncio.sleep(30)
        return "never"

    child = build({"Start": "Start1", "Slow": "slow"}, [("Start", "Slow")], name="child")

    async def sub(ctx: ExecutionContext) -> NodeResult:
        result = await ctx.run_child(child, "x")
        return NodeResult(output_text=result.status.value)

    store = InMemoryStore()
    registry = SimpleNodeRegistry({"slow": slow, "sub": sub, "step": lambda ctx: "s"})
    runner = FlowRunner(parent_graph(), registry, store=store)

    async def scenario() -> Any:
        task = asyncio.ensure_future(runner.arun("in"))
        await entered.wait()
        parent_id = next(f for f in runner.active_flows if store.get_flow(f).parent_flow_id is None)
        runner.stop(parent_id)
        return await task

    result = asyncio.run(scenario())
    assert result.status is FlowStatus.STOPPED
    statuses = sorted(r.status.value for r in store.list_flows())
    assert statuses == ["stopped", "stopped"]


def test_persistent_memory_is_per_agent_and_outlives_flows() -> None:
    async def remember(ctx: ExecutionContext) -> str:
        memory = ctx.persistent_memory
        seen = memory.read(ctx.agent_id, "visits") or "0"
        memory.write(ctx.agent_id, "visits", str(int(seen) + 1))
        return seen

    trace = Trace().on("step", remember)
    store = InMemoryStore()
    graph = chain(3)
    first = FlowRunner(graph, trace.registry, store=store).run("a")
    second = FlowRunner(graph, trace.registry, store=store).run("b")
    assert (first.final_output, second.final_output) == ("0", "1")
    assert store.persistent_memory().read(graph.agent_id, "visits") == "2"


class Checked:
    """An executor that validates its node's settings before the flow starts."""

    def __init__(self) -> None:
        self.ran = 0

    def validate_node(self, node: GraphNode, graph: Any) -> list[str]:
        if "expression" not in node.metadata:
            return ["metadata 'expression' is required"]
        return []

    async def execute(self, ctx: ExecutionContext) -> NodeResult:
        self.ran += 1
        return NodeResult(output_text="ok")


def test_node_settings_are_checked_before_anything_runs() -> None:
    checked = Checked()
    graph = build(
        {
            "Start": "Start1",
            "Good": {"type": "checked", "metadata": {"expression": "1"}},
            "Bad1": "checked",
            "Bad2": "checked",
        },
        [("Start", "Good"), ("Good", "Bad1"), ("Bad1", "Bad2")],
        name="checked-graph",
    )
    runner = FlowRunner(graph, SimpleNodeRegistry({"checked": checked}))
    with pytest.raises(NodeConfigError) as caught:
        runner.run("x")
    assert str(caught.value) == (
        "graph checked-graph has invalid node settings:\n"
        f"  nodes 'Bad1' ({node_id('Bad1')}), 'Bad2' ({node_id('Bad2')}): "
        "metadata 'expression' is required"
    )
    assert checked.ran == 0
    assert runner.store.list_flows() == []


def test_unknown_types_are_all_listed_at_once_with_a_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QM_LOAD_PLUGINS", "")  # only the core's own executors
    graph = build(
        {"Start": "Start1", "A": "acme.A", "B": "Strat1"},
        [("Start", "A"), ("A", "B")],
        name="g",
    )
    with pytest.raises(UnknownNodeTypeError) as caught:
        FlowRunner(graph).run("x")
    assert str(caught.value).splitlines() == [
        "graph g uses node types with no executor:",
        f"  no executor for node type 'acme.A' (node 'A' ({node_id('A')})); "
        "`qm plugins` lists the installed ones",
        f"  no executor for node type 'Strat1' (node 'B' ({node_id('B')})); did you mean 'Start1'?",
    ]


def test_recovering_a_parent_continues_its_interrupted_child() -> None:
    """The process dies while a child flow runs; recovery picks the child up where it
    was instead of starting it again."""
    ran: list[str] = []
    block = {"on": True}
    entered = asyncio.Event()

    async def work(ctx: ExecutionContext) -> str:
        ran.append(ctx.current_node.name)
        if ctx.current_node.name == "Slow" and block["on"]:
            entered.set()
            await asyncio.sleep(60)  # the crash happens here
        return f"{ctx.current_node.name}({ctx.input_text})"

    child = build(
        {"Start": "Start1", "Fast": "work", "Slow": "work", "End": "End1"},
        [("Start", "Fast"), ("Fast", "Slow"), ("Slow", "End")],
        name="child",
    )

    async def sub(ctx: ExecutionContext) -> NodeResult:
        result = await ctx.run_child(child, ctx.input_text)
        return NodeResult(output_text=result.final_output)

    store = InMemoryStore()
    registry = SimpleNodeRegistry({"work": work, "sub": sub, "step": work})

    async def crash() -> Any:
        runner = FlowRunner(parent_graph(), registry, store=store)
        task = asyncio.ensure_future(runner.arun("in"))
        await entered.wait()
        parent_id = next(f for f in runner.active_flows if store.get_flow(f).parent_flow_id is None)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return parent_id

    parent_id = asyncio.run(crash())
    assert ran == ["Fast", "Slow"]
    block["on"] = False
    result = FlowRunner(chain(3), registry, store=store).recover(parent_id)
    assert result.status is FlowStatus.COMPLETED
    assert result.final_output == "After(Slow(Fast(in)))"
    assert ran == ["Fast", "Slow", "Slow", "After"]  # Fast committed: it did not run again
    assert sorted(r.status.value for r in store.list_flows()) == ["completed", "completed"]


def test_a_registry_without_start_and_end_does_not_load_plugins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from quartermaster_engine.plugins import loader

    def refuse(**kwargs: Any) -> Any:
        raise AssertionError("plugins were loaded")

    monkeypatch.setattr(loader, "load_plugins", refuse)
    trace = Trace().on("step")
    assert FlowRunner(chain(3), trace.registry).run("x").final_output == "n0(x)"


def test_agent_memory_is_async_whatever_the_store() -> None:
    async def remember(ctx: ExecutionContext) -> str:
        seen = await ctx.agent_memory.read(ctx.agent_id, "visits") or "0"
        await ctx.agent_memory.write(ctx.agent_id, "visits", str(int(seen) + 1))
        return f"{seen}:{await ctx.agent_memory.list_keys(ctx.agent_id)}"

    trace = Trace().on("step", remember)
    store = InMemoryStore()  # its persistent memory has plain def methods
    runner = FlowRunner(chain(3), trace.registry, store=store)
    assert [runner.run("x").final_output for _ in range(2)] == ["0:['visits']", "1:['visits']"]
