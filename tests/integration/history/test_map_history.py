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


def test_a_fork_that_reuses_runs_the_map_and_its_items_again(stores: StoreFactory) -> None:
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
    # ended) ran all three again, the fork at 5 (items 1 and 2 ended) only the third.
    assert ran == {"a": 3, "b": 3, "c": 4}
