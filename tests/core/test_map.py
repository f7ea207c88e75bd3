"""Map1 / ``.map()``: one activation per item of a list computed at run time, at most
``max_concurrency`` at once, results joined in item order (docs/map.md)."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from typing import Any

import pytest

from qm_nodes_std import register_graph, std_registry, unregister_graph
from qm_nodes_std.catalog import std_executors
from quartermaster_engine import (
    ExecutionContext,
    FlowEvent,
    FlowRunner,
    FlowStatus,
    InMemoryStore,
    NodeResult,
    SimpleNodeRegistry,
)
from quartermaster_engine.context.node_execution import NodeStatus
from quartermaster_engine.dispatchers import AsyncDispatcher
from quartermaster_engine.events import MapProgress, NodeStarted
from quartermaster_engine.runner.executors import NodeConfigError
from quartermaster_engine.runner.stepper import FlowStepper
from quartermaster_engine.testing import build_graph, call
from quartermaster_graph import Graph, GraphNode, GraphSpec
from quartermaster_graph.validation import GraphValidationError, validate_graph


def shout(ctx: ExecutionContext) -> NodeResult:
    return NodeResult(output_text=f"{ctx.memory['index']}:{ctx.input_text.upper()}")


def picky(ctx: ExecutionContext) -> NodeResult:
    if ctx.memory["item"] in ("b", "d"):
        return NodeResult(success=False, error=f"no {ctx.memory['item']}")
    return NodeResult(output_text=ctx.input_text.upper())


def registry(**extra: Any) -> SimpleNodeRegistry:
    return SimpleNodeRegistry({**std_executors(), "shout": shout, "picky": picky, **extra})


def map_graph(
    node: str | GraphNode = "shout", k: int = 2, on_item_error: str = "fail"
) -> GraphSpec:
    return (
        Graph("Map")
        .var("Docs", variable="docs", expression="input.split()")
        .map(
            "Shout", items="memory.docs", node=node, max_concurrency=k, on_item_error=on_item_error
        )
        .text("After", template="got {{ input }} / {{ memory.Shout | length }}")
        .end()
        .build()
    )


def test_items_run_once_each_and_join_in_item_order() -> None:
    events: list[FlowEvent] = []
    runner = FlowRunner(map_graph(), registry(), on_event=events.append)
    result = runner.run("a b c d e")
    assert result.status is FlowStatus.COMPLETED
    assert result.final_output == 'got ["0:A", "1:B", "2:C", "3:D", "4:E"] / 5'
    shout = next(n for n in runner.graph.nodes if n.name == "Shout")
    assert json.loads(result.node_results[shout.id].output_text or "") == [
        "0:A",
        "1:B",
        "2:C",
        "3:D",
        "4:E",
    ]
    started = Counter(e.node_name for e in events if isinstance(e, NodeStarted))
    assert started == {"Start": 1, "Docs": 1, "Shout": 2, "Shout item": 5, "After": 1, "End": 1}
    progress = [(e.done, e.failed, e.running) for e in events if isinstance(e, MapProgress)]
    assert progress == [(0, 0, 2), (1, 0, 2), (2, 0, 2), (3, 0, 2), (4, 0, 1), (5, 0, 0)]
    assert {e.total for e in events if isinstance(e, MapProgress)} == {5}


def test_an_empty_list_goes_straight_on_with_an_empty_list() -> None:
    events: list[FlowEvent] = []
    result = FlowRunner(map_graph(), registry(), on_event=events.append).run("   ")
    assert result.final_output == "got [] / 0"
    assert not [e for e in events if isinstance(e, NodeStarted) and e.node_name == "Shout item"]
    assert not [e for e in events if isinstance(e, MapProgress)]


def test_at_most_k_items_run_at_once_and_slow_items_keep_their_place() -> None:
    inside, peak = [0], [0]

    async def slow(ctx: ExecutionContext) -> str:
        inside[0] += 1
        peak[0] = max(peak[0], inside[0])
        await asyncio.sleep(0.002 * (10 - int(ctx.input_text)))  # later items end first
        inside[0] -= 1
        return f"<{ctx.input_text}>"

    graph = (
        Graph("Slow").map("M", items="input.split()", node="slow", max_concurrency=3).end().build()
    )
    runner = FlowRunner(graph, registry(slow=slow), dispatcher=AsyncDispatcher())
    result = runner.run("0 1 2 3 4 5 6 7 8 9")
    assert json.loads(result.final_output) == [f"<{i}>" for i in range(10)]
    assert peak[0] == 3


def test_on_item_error_skip_collect_and_fail() -> None:
    skip = FlowRunner(map_graph("picky", on_item_error="skip"), registry()).run("a b c d e")
    assert skip.final_output == 'got ["A", "C", "E"] / 3'
    collect = FlowRunner(map_graph("picky", on_item_error="collect"), registry()).run("a b c d")
    assert collect.final_output == ('got ["A", {"error": "no b"}, "C", {"error": "no d"}] / 4')
    failed = FlowRunner(map_graph("picky", k=1), registry()).run("a b c")
    assert failed.status is FlowStatus.FAILED
    assert re.fullmatch(
        r"node 'Shout item' \([0-9a-f-]{36}\): item 1 of map 'Shout' \([0-9a-f-]{36}\) "
        r"failed: no b",
        failed.error or "",
    )


def test_progress_counts_failed_items() -> None:
    events: list[FlowEvent] = []
    runner = FlowRunner(
        map_graph("picky", k=5, on_item_error="skip"), registry(), on_event=events.append
    )
    runner.run("a b c d e")
    last = [e for e in events if isinstance(e, MapProgress)][-1]
    assert (last.total, last.done, last.failed, last.running) == (5, 5, 2, 0)


def test_an_item_node_retries_before_its_error_counts() -> None:
    tries: Counter[str] = Counter()

    def flaky(ctx: ExecutionContext) -> NodeResult:
        tries[ctx.input_text] += 1
        if ctx.input_text == "b" and ctx.attempt == 1:
            return NodeResult(success=False, error="flaky")
        return NodeResult(output_text=ctx.input_text)

    node = GraphNode(type="flaky", name="Flaky", error_handling="Retry", max_retries=2)
    result = FlowRunner(map_graph(node), registry(flaky=flaky)).run("a b c")
    assert result.final_output == 'got ["a", "b", "c"] / 3'
    assert tries == {"a": 1, "b": 2, "c": 1}


def test_items_expression_must_give_a_list() -> None:
    graph = Graph("Bad").map("M", items="len(input)", node="shout").end().build()
    result = FlowRunner(graph, registry()).run("abc")
    assert result.status is FlowStatus.FAILED
    assert "'items' 'len(input)' gave int, not a list" in (result.error or "")


def test_a_map_must_name_an_unconnected_node() -> None:
    b = Graph("Wired").node("shout", "S").map("M", items="[1]", node="shout")
    b.connect("S", "M item")  # the item node is wired: refused
    with pytest.raises(GraphValidationError) as err:
        b.build()
    assert "map-node-invalid" in {i.code for i in err.value.issues}
    assert re.fullmatch(
        r"graph 'Wired' has 1 error:\n  error \[map-node-invalid\] 'M' \([0-9a-f-]{36}\) "
        r"maps 'M item' \([0-9a-f-]{36}\), which has edges; a mapped node has none",
        str(err.value),
    )
    spec = Graph("Missing").map("M", items="[1]", node="shout").end().build()
    spec.nodes = [n for n in spec.nodes if n.name != "M item"]
    (issue,) = [i for i in validate_graph(spec) if i.code == "map-node-invalid"]
    assert "names no node of the graph as its 'node'" in issue.message


def test_builder_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match=r"map\('M'\): max_concurrency must be at least 1"):
        Graph("x").map("M", items="[1]", node="shout", max_concurrency=0)
    with pytest.raises(ValueError, match=r"on_item_error must be one of 'fail', 'skip', 'collect'"):
        Graph("x").map("M", items="[1]", node="shout", on_item_error="ignore")
    with pytest.raises(ValueError, match=r"items must be an expression"):
        Graph("x").map("M", items="", node="shout")


def test_a_map_in_a_loop_maps_each_visit_anew() -> None:
    graph = (
        Graph("Loop")
        .var("Docs", variable="docs", expression='["x" + str(visit)] * visit')
        .map("Shout", items="memory.docs", node="shout", max_concurrency=1)
        .if_node("More?", expression="len(memory.Shout) < 2")
        .on("true")
        .back("Again")
        .end()
        .on("false")
        .text("Out", template="{{ input }}")
        .end()
        .build()
    )
    events: list[FlowEvent] = []
    result = FlowRunner(graph, registry(), on_event=events.append).run("a")
    assert result.status is FlowStatus.COMPLETED, result.error
    assert json.loads(result.final_output) == ["0:X2", "1:X2"]
    items = [e.visit for e in events if isinstance(e, NodeStarted) and e.node_name == "Shout item"]
    assert items == [1, 2, 3]  # one item on the first visit, two on the second


def test_items_spread_over_steppers_and_join_in_order() -> None:
    asyncio.run(_steppers())


async def _steppers() -> None:
    store = InMemoryStore()
    runner = FlowRunner(map_graph(k=4), registry(), store=store)
    workers = [FlowStepper(runner) for _ in range(3)]
    fid = await runner.asubmit("a b c d e f g h")
    queue = [ref for ref, _ in await workers[0].pending(fid)]
    ran_by: Counter[int] = Counter()
    turn = 0
    final = None
    while queue:
        batch, queue = queue[:3], queue[3:]
        works = []
        for ref in batch:  # executed at once on different workers, committed one by one
            worker = workers[turn % 3]
            turn += 1
            works.append((worker, await worker.execute(fid, ref)))
            ran_by[turn % 3] += 1
        for worker, work in works:
            assert work is not None
            step = await worker.complete(work)
            queue.extend(ref for ref, _ in step.queued)
            if step.result is not None:
                final = step.result
    assert final is not None
    assert final.status is FlowStatus.COMPLETED
    assert final.final_output == (
        'got ["0:A", "1:B", "2:C", "3:D", "4:E", "5:F", "6:G", "7:H"] / 8'
    )
    assert len(ran_by) == 3
    snap = call(store, "load_flow", fid)
    kinds = Counter(r.status for r in snap.records)
    # The 8 items, then Start, Docs, Shout (its mapping record, then its join), After, End.
    assert kinds == {NodeStatus.FINISHED: 8 + 5, NodeStatus.MAPPING: 1}


def test_graph_runs_a_child_flow_per_item() -> None:
    register_graph("shouter", Graph("Shouter").text("Loud", template="{{ input | upper }}!").end())
    try:
        graph = (
            Graph("Children")
            .map("Loud", items="input.split()", graph="shouter", max_concurrency=2)
            .end()
            .build()
        )
        item = next(n for n in graph.nodes if n.name == "Loud item")
        assert (item.type_name, item.metadata) == ("SubAssistant1", {"graph": "shouter"})
        result = FlowRunner(graph, std_registry()).run("a b c")
        assert result.status is FlowStatus.COMPLETED, result.error
        assert json.loads(result.final_output) == ["A!", "B!", "C!"]
    finally:
        unregister_graph("shouter")
    with pytest.raises(ValueError, match=r"map\('M'\): give node= or graph=, not both or neither"):
        Graph("x").map("M", items="[1]")


def test_two_maps_on_parallel_branches_run_at_once_and_each_joins_its_own() -> None:
    async def tag(ctx: ExecutionContext) -> str:
        await asyncio.sleep(0.001 * (5 - ctx.memory["index"]))
        return f"{ctx.current_node.name}:{ctx.input_text}"

    b = Graph("Two maps").var("Docs", variable="docs", expression="input.split()").parallel()
    b.branch().map("Left", items="memory.docs", node="tag", max_concurrency=2).end()
    b.branch().map("Right", items="memory.docs[::-1]", node="tag", max_concurrency=9).end()
    graph = b.static_merge("Both").end().build()
    events: list[FlowEvent] = []
    runner = FlowRunner(
        graph, registry(tag=tag), dispatcher=AsyncDispatcher(), on_event=events.append
    )
    result = runner.run("a b c")
    assert result.status is FlowStatus.COMPLETED, result.error
    memory = {e.node_name: e for e in events if isinstance(e, MapProgress) and e.done == 3}
    assert set(memory) == {"Left", "Right"}
    outputs = {
        name: json.loads(result.node_results[n.id].output_text or "")
        for name in ("Left", "Right")
        for n in graph.nodes
        if n.name == name
    }
    assert outputs == {
        "Left": ["Left item:a", "Left item:b", "Left item:c"],
        "Right": ["Right item:c", "Right item:b", "Right item:a"],
    }
    # max_concurrency above the list's length: every item starts at once.
    first = {e.node_name: e.running for e in events if isinstance(e, MapProgress) and not e.done}
    assert first == {"Left": 2, "Right": 3}


def test_a_map1_executor_of_ones_own_gives_the_list() -> None:
    class Three:
        def execute(self, ctx: ExecutionContext) -> NodeResult:
            return NodeResult(data={"map_items": ["x", "y", "z"]})

    class Wrong:
        def execute(self, ctx: ExecutionContext) -> str:
            return "x y z"

    graph = Graph("Own").map("M", items="unused", node="shout").end().build()
    own = FlowRunner(graph, SimpleNodeRegistry({"shout": shout, "Map1": Three()})).run("")
    assert own.final_output == '["0:X", "1:Y", "2:Z"]'
    wrong = FlowRunner(graph, SimpleNodeRegistry({"shout": shout, "Map1": Wrong()})).run("")
    assert wrong.status is FlowStatus.FAILED
    assert "the Map1 items executor returned str; expected NodeResult(data=" in (wrong.error or "")


def test_a_graph_file_names_the_mapped_node_by_name() -> None:

    graph = build_graph(
        {
            "Start": "Start1",
            "M": {"type": "Map1", "metadata": {"items": "input.split()", "node": "Loud"}},
            "Loud": "shout",
            "End": "End1",
        },
        [("Start", "M"), ("M", "End")],
    )
    assert FlowRunner(graph, registry()).run("p q").final_output == '["0:P", "1:Q"]'


def test_bad_settings_in_a_graph_file_are_refused_before_the_flow_starts() -> None:
    graph = build_graph(
        {
            "Start": "Start1",
            "M": {
                "type": "Map1",
                "metadata": {
                    "items": "input.split(",
                    "node": "Loud",
                    "max_concurrency": "many",
                    "on_item_error": "shrug",
                },
            },
            "Loud": "shout",
            "End": "End1",
        },
        [("Start", "M"), ("M", "End")],
    )
    with pytest.raises(NodeConfigError) as err:
        FlowRunner(graph, registry()).run("p q")
    text = str(err.value)
    assert "metadata 'items': invalid syntax in 'input.split('" in text
    assert "Map1 'max_concurrency' 'many' is not a whole number >= 1" in text
    assert "Map1 'on_item_error' 'shrug' is not one of 'fail', 'skip', 'collect'" in text
