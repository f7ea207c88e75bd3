"""Routing against a reference interpreter, on random graphs (hypothesis).

Graphs are random DAGs: fan-outs, decisions (SpawnPickedNode) picking one
branch, AwaitAll and AwaitFirst joins, nodes that fail with SKIP or CONTINUE,
so that dead paths run through joins in every combination. The reference
says which nodes run, straight from the semantics (DESIGN section 4): an edge
is live when its source ran and selected it; a node runs once if any incoming
edge is live, and never if all are dead. The engine must run exactly those
nodes, once each, whether one `run()` drives the flow or a `FlowStepper`
advances it step by step from the store. (Loops are covered by the example
tests of test_loops.py; here every node has one visit.)
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quartermaster_engine import (
    FlowRunner,
    FlowStatus,
    InMemoryStore,
    NodeResult,
    SimpleNodeRegistry,
)
from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.runner.stepper import FlowStepper
from quartermaster_engine.testing import build_graph
from quartermaster_engine.testing.graphs import name_id

Shape = dict[str, Any]
END_ID = name_id("End")


@st.composite
def dags(draw: st.DrawFn) -> Shape:
    """``{"nodes": [(name, kind, join)], "edges": [(src, dst, label)], "pick": {...}}``."""
    count = draw(st.integers(min_value=2, max_value=10))
    names = [f"n{i}" for i in range(count)]
    kinds = ["Start"] + [
        draw(st.sampled_from(["work", "work", "decide", "skip", "continue"])) for _ in names[1:]
    ]
    edges: list[tuple[int, int]] = []
    for i in range(1, count):
        preds = draw(st.sets(st.integers(min_value=0, max_value=i - 1), min_size=1, max_size=3))
        edges.extend((p, i) for p in sorted(preds))
    # Sinks flow into End, so every node has a successor.
    sources = {s for s, _ in edges}
    end = count
    edges.extend((i, end) for i in range(count) if i not in sources)
    joins = {
        i: draw(st.sampled_from(["AwaitAll", "AwaitFirst"]))
        for i in range(1, end + 1)
        if sum(1 for _, d in edges if d == i) > 1
    }
    picks: dict[int, int] = {}
    for i, kind in enumerate(kinds):
        if kind == "decide":
            out = [d for s, d in edges if s == i]
            picks[i] = draw(st.integers(min_value=0, max_value=len(out) - 1))
    return {"count": count, "kinds": kinds, "edges": edges, "joins": joins, "picks": picks}


def _name(i: int, shape: Shape) -> str:
    return "End" if i == shape["count"] else ("Start" if i == 0 else f"n{i}")


def graph_of(shape: Shape) -> Any:
    nodes: dict[str, str | dict[str, Any]] = {}
    for i, kind in enumerate(shape["kinds"]):
        name = _name(i, shape)
        if i == 0:
            nodes[name] = "Start1"
            continue
        spec: dict[str, Any] = {"type": "decide" if kind == "decide" else "work"}
        if kind == "decide":
            spec["traverse_out"] = "SpawnPickedNode"
        if kind in ("skip", "continue"):
            spec["error_handling"] = "Skip" if kind == "skip" else "Continue"
            spec["metadata"] = {"fail": True}
        if i in shape["joins"]:
            spec["traverse_in"] = shape["joins"][i]
        nodes[name] = spec
    end_spec: dict[str, Any] = {"type": "End1"}
    if shape["count"] in shape["joins"]:
        end_spec["traverse_in"] = shape["joins"][shape["count"]]
    nodes["End"] = end_spec
    edges = []
    for s, d in shape["edges"]:
        label = f"to {_name(d, shape)}" if shape["kinds"][s] == "decide" else ""
        edges.append(
            (_name(s, shape), _name(d, shape), label)
            if label
            else (_name(s, shape), _name(d, shape))
        )
    for i, pick in shape["picks"].items():
        out = [d for s, d in shape["edges"] if s == i]
        nodes[_name(i, shape)]["metadata"] = {"pick": f"to {_name(out[pick], shape)}"}  # type: ignore[index]
    return build_graph(nodes, edges)


def reference(shape: Shape) -> Counter[str]:
    """Which nodes run: an edge is live when its source ran and selected it."""
    count = shape["count"]
    ran: set[int] = {0}
    live: set[tuple[int, int]] = set()
    for i in range(count + 1):
        if i > 0:
            incoming = [(s, d) for s, d in shape["edges"] if d == i]
            if not any(e in live for e in incoming):
                continue
            ran.add(i)
        out = [(s, d) for s, d in shape["edges"] if s == i]
        kind = shape["kinds"][i] if i < count else "end"
        if kind == "decide":
            live.add(out[shape["picks"][i]])
        else:  # work, a failed node passing through (SKIP/CONTINUE), Start
            live.update(out)
    return Counter(_name(i, shape) for i in ran)


def registry(ran: Counter[str]) -> SimpleNodeRegistry:
    def work(ctx: ExecutionContext) -> NodeResult:
        ran[ctx.current_node.name] += 1
        if ctx.current_node.metadata.get("fail"):
            return NodeResult(success=False, error="planned failure")
        return NodeResult(output_text=ctx.current_node.name)

    def decide(ctx: ExecutionContext) -> NodeResult:
        ran[ctx.current_node.name] += 1
        return NodeResult(output_text="picked", picked_node=ctx.current_node.metadata["pick"])

    return SimpleNodeRegistry({"work": work, "decide": decide})


def _engine_runs(shape: Shape) -> tuple[Counter[str], FlowStatus]:
    ran: Counter[str] = Counter()
    result = FlowRunner(graph_of(shape), registry(ran)).run("x")
    ran["Start"] += 1
    if result.node_results.get(END_ID) is not None:
        ran["End"] += 1
    return ran, result.status


def _stepped_runs(shape: Shape) -> Counter[str]:
    async def go() -> Counter[str]:
        ran: Counter[str] = Counter()
        runner = FlowRunner(graph_of(shape), registry(ran), store=InMemoryStore())
        stepper = FlowStepper(runner)
        flow_id = await runner.asubmit("x")
        result = await stepper.run_to_end(flow_id)
        assert result.result is not None
        ran["Start"] += 1
        if result.result.node_results.get(END_ID) is not None:
            ran["End"] += 1
        return ran

    return asyncio.run(go())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_the_engine_runs_exactly_the_nodes_the_reference_runs(shape: Shape) -> None:
    expected = reference(shape)
    ran, status = _engine_runs(shape)
    assert ran == expected
    failed_continue = any(
        shape["kinds"][i] == "continue" for i in range(1, shape["count"]) if _name(i, shape) in ran
    )
    assert status is (FlowStatus.FAILED if failed_continue else FlowStatus.COMPLETED)
    assert _stepped_runs(shape) == expected
