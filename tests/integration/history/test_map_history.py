"""History of flows with a Map1 node (docs/map.md): the replay of their records
rebuilds a map's frontier, so forks at every checkpoint and a retry after a
failed item go on with the right items."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from qm_nodes_std.catalog import std_executors
from quartermaster_engine import (
    Engine,
    ExecutionContext,
    FlowStatus,
    NodeResult,
    SimpleNodeRegistry,
)
from quartermaster_graph import Graph, GraphSpec

StoreFactory = Callable[[], Any]


def graph(on_item_error: str = "fail") -> GraphSpec:
    return (
        Graph("Map history")
        .var("Docs", variable="docs", expression="input.split()")
        .map("M", items="memory.docs", node="shout", max_concurrency=2, on_item_error=on_item_error)
        .text("After", template="{{ input }}")
        .end()
        .build()
    )


def registry(ran: Counter[str], broken: set[str]) -> SimpleNodeRegistry:
    def shout(ctx: ExecutionContext) -> NodeResult:
        ran[ctx.input_text] += 1
        if ctx.input_text in broken:
            return NodeResult(success=False, error=f"broken {ctx.input_text}")
        return NodeResult(output_text=ctx.input_text.upper())

    return SimpleNodeRegistry({**std_executors(), "shout": shout})


def test_a_fork_at_every_checkpoint_of_a_map_ends_as_the_original(stores: StoreFactory) -> None:
    async def go() -> tuple[Any, list[Any], list[tuple[int, Any, Any]]]:
        ran: Counter[str] = Counter()
        async with Engine(stores(), registry=registry(ran, set())) as engine:
            done = await engine.run(graph(), "a b c d e")
            original = await engine.history(done.flow_id)
            forks = []
            for at in range(len(original) + 1):
                fid = await engine.fork(done.flow_id, at=at)
                forks.append((at, await engine.recover(fid), await engine.history(fid)))
            return done, original, forks

    done, original, forks = asyncio.run(go())
    assert done.final_output == '["A", "B", "C", "D", "E"]'
    names = [c.node_name for c in original]
    assert Counter(names) == {"Start": 1, "Docs": 1, "M": 2, "M item": 5, "After": 1, "End": 1}
    for at, result, history in forks:
        assert (result.status, result.final_output) == (done.status, done.final_output), at
        rows = [(c.node_name, c.visit, c.outcome, c.result) for c in history]
        assert rows == [(c.node_name, c.visit, c.outcome, c.result) for c in original], at


def test_a_retry_after_a_failed_item_runs_it_and_the_items_still_pending(
    stores: StoreFactory,
) -> None:
    async def go() -> tuple[Any, Any, Counter[str]]:
        ran: Counter[str] = Counter()
        broken = {"c"}
        async with Engine(stores(), registry=registry(ran, broken)) as engine:
            failed = await engine.run(graph(), "a b c d e")
            broken.clear()  # the fix
            retried = await engine.retry(failed.flow_id)
            return failed, retried, ran

    failed, retried, ran = asyncio.run(go())
    assert failed.status is FlowStatus.FAILED
    assert "item 2 of map 'M'" in (failed.error or "")
    assert (retried.status, json.loads(retried.final_output)) == (
        FlowStatus.COMPLETED,
        ["A", "B", "C", "D", "E"],
    )
    assert ran == {"a": 1, "b": 1, "c": 2, "d": 1, "e": 1}


def test_forks_that_reuse_at_any_checkpoint_run_no_item_again(stores: StoreFactory) -> None:
    async def go() -> tuple[Any, list[Any], Counter[str]]:
        ran: Counter[str] = Counter()
        async with Engine(stores(), registry=registry(ran, set())) as engine:
            done = await engine.run(graph(), "a b c")
            forks = []
            for at in (0, 3, 5):
                fid = await engine.fork(done.flow_id, at=at, reuse="unchanged")
                forks.append(await engine.recover(fid))
            return done, forks, ran

    done, forks, ran = asyncio.run(go())
    assert [(f.status, f.final_output) for f in forks] == [
        (FlowStatus.COMPLETED, done.final_output)
    ] * 3
    # The original ran each item once; the forks at 0 and 3 (before any item
    # ended) and at 5 (items 1 and 2 ended) reused every item.
    assert ran == {"a": 1, "b": 1, "c": 1}


class _Shout:
    """The items' executor, counting its calls by item; it reads no flow memory."""

    def __init__(self, ran: Counter[str]) -> None:
        self.ran = ran

    def execute(self, ctx: ExecutionContext) -> NodeResult:
        self.ran[ctx.input_text] += 1
        return NodeResult(output_text=ctx.input_text.upper())

    def memory_reads(self, node: Any) -> tuple[str, ...]:
        return ()


def reuse_registry(ran: Counter[str]) -> SimpleNodeRegistry:
    """A Map1 executor of our own (its list: ``memory.docs``), counting its runs as
    ``ran["M"]``; the items' ``shout`` counts each item's runs."""

    def items(ctx: ExecutionContext) -> NodeResult:
        ran["M"] += 1
        return NodeResult(data={"map_items": list(ctx.memory["docs"])})

    return SimpleNodeRegistry({**std_executors(), "Map1": items, "shout": _Shout(ran)})


def _reuse_fork(
    stores: StoreFactory, **edits: Any
) -> tuple[Any, Any, Counter[str], list[tuple[str, int]]]:
    async def go() -> tuple[Any, Any, Counter[str], list[tuple[str, int]]]:
        ran: Counter[str] = Counter()
        async with Engine(stores(), registry=reuse_registry(ran)) as engine:
            done = await engine.run(graph(), "a b c d e")
            assert ran == {"M": 1, "a": 1, "b": 1, "c": 1, "d": 1, "e": 1}
            ran.clear()
            fid = await engine.fork(done.flow_id, at=0, reuse="unchanged", **edits)
            forked = await engine.recover(fid)
            history = await engine.history(fid)
            return done, forked, ran, [(c.node_name, c.visit) for c in history if c.reused]

    return asyncio.run(go())


def test_a_fork_reusing_unchanged_runs_neither_the_map_nor_its_items(
    stores: StoreFactory,
) -> None:
    done, forked, ran, reused = _reuse_fork(stores)
    assert (forked.status, forked.final_output) == (FlowStatus.COMPLETED, done.final_output)
    assert ran == {}
    assert reused == [
        ("Start", 1), ("Docs", 1), ("M", 1),
        ("M item", 1), ("M item", 2), ("M item", 3), ("M item", 4), ("M item", 5),
        ("After", 1), ("End", 1),
    ]  # fmt: skip


def test_a_fork_with_one_item_changed_runs_the_map_and_that_item_only(
    stores: StoreFactory,
) -> None:
    """The new input changes the list (``docs``): the Map1 node runs again; the items
    whose value and place did not change are reused, item 3 ("X") runs."""
    _, forked, ran, reused = _reuse_fork(stores, input="a b X d e")
    assert (forked.status, forked.final_output) == (
        FlowStatus.COMPLETED,
        '["A", "B", "X", "D", "E"]',
    )
    assert ran == {"M": 1, "X": 1}
    assert reused == [("M item", 1), ("M item", 2), ("M item", 4), ("M item", 5)]
