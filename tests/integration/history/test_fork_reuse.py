"""Forks with ``reuse="unchanged"`` on every store kind: a node whose inputs are
the same as in the original reuses its result (its executor is not called)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from history_support import GRAPH, registry

from quartermaster_engine import Engine, FlowStatus, NodeResult, NodeReused, SimpleNodeRegistry
from quartermaster_engine.history import Checkpoint
from quartermaster_graph import GraphNode


def _rows(history: list[Checkpoint]) -> list[tuple[Any, ...]]:
    return [
        (c.node_name, c.visit, c.attempt, c.outcome, c.result, dict(c.memory), c.messages)
        for c in history
    ]


StoreFactory = Callable[[], Any]


class Counted:
    """A history-test executor that counts its calls by node name; ``reads`` (when
    given) is what it declares of the flow memory it reads (`ReadsMemory`)."""

    def __init__(self, inner: Any, calls: Counter[str]) -> None:
        self.inner = inner
        self.calls = calls

    def execute(self, ctx: Any) -> NodeResult:
        self.calls[ctx.current_node.name] += 1
        return self.inner.execute(ctx)  # type: ignore[no-any-return]


class CountedReadsNothing(Counted):
    def memory_reads(self, node: GraphNode) -> tuple[str, ...]:
        return ()


def counting(calls: Counter[str], *, step_reads_nothing: bool = False) -> SimpleNodeRegistry:
    """The history tests' executors, counting calls by node name."""
    base = registry()
    reg = SimpleNodeRegistry()
    for node_type in ("inc", "check", "step", "ask"):
        inner = base.get_executor(node_type)
        kind = CountedReadsNothing if step_reads_nothing and node_type == "step" else Counted
        reg.register(node_type, kind(inner, calls))
    return reg


def test_a_fork_without_edits_reuses_every_node_and_ends_the_same(stores: StoreFactory) -> None:
    calls: Counter[str] = Counter()

    async def go() -> tuple[Any, Any, list[Checkpoint], list[Checkpoint], list[Any]]:
        async with Engine(stores(), registry=counting(calls)) as engine:
            paused = await engine.run(GRAPH, "go")
            original = await engine.resume(paused.flow_id, "Bob")
            calls.clear()
            fid = await engine.fork(paused.flow_id, at=0, reuse="unchanged")
            await engine.recover(fid)  # pauses at Ask: its waiting run has no result
            forked = await engine.resume(fid, "Bob")
            events = await engine.store_adapter.read_events(fid)
            before = await engine.history(paused.flow_id)
            return original, forked, before, await engine.history(fid), events

    original, forked, before, after, events = asyncio.run(go())
    assert (forked.status, forked.final_output) == (FlowStatus.COMPLETED, "hello Bob")
    assert original.final_output == "hello Bob"
    # Only Ask's waiting run called an executor (a waiting run is never reused).
    assert calls == Counter({"Ask": 1})
    assert _rows(after) == _rows(before)
    reused = [(e.node_name, e.visit) for e in events if isinstance(e, NodeReused)]
    assert reused == [(c.node_name, c.visit) for c in after if c.reused]
    assert reused == [
        ("Start", 1), ("Inc", 1), ("A", 1), ("B", 1), ("J", 1), ("Check", 1),
        ("Inc", 2), ("A", 2), ("B", 2), ("J", 2), ("Check", 2), ("Ask", 1), ("End", 1),
    ]  # fmt: skip


def test_a_memory_edit_runs_again_only_the_nodes_that_read_memory(stores: StoreFactory) -> None:
    """A, B and J declare they read no memory: with x=1 set at checkpoint 0, Inc,
    Check and Ask (which read all memory) run again; A, B, J are reused."""
    calls: Counter[str] = Counter()

    async def go() -> tuple[Any, list[Checkpoint], list[Checkpoint]]:
        async with Engine(stores(), registry=counting(calls, step_reads_nothing=True)) as engine:
            paused = await engine.run(GRAPH, "go")
            await engine.resume(paused.flow_id, "Bob")
            calls.clear()
            fid = await engine.fork(paused.flow_id, at=0, memory={"x": 1}, reuse="unchanged")
            await engine.recover(fid)
            result = await engine.resume(fid, "Bob")
            return result, await engine.history(paused.flow_id), await engine.history(fid)

    result, before, after = asyncio.run(go())
    assert (result.status, result.final_output) == (FlowStatus.COMPLETED, "hello Bob")
    assert calls == Counter({"Inc": 2, "Check": 2, "Ask": 2})
    assert [(c.node_name, c.visit) for c in after if c.reused] == [
        ("Start", 1), ("A", 1), ("B", 1), ("J", 1), ("A", 2), ("B", 2), ("J", 2), ("End", 1),
    ]  # fmt: skip
    assert after[0].outcome == "edited"
    assert [c.result for c in after[1:]] == [c.result for c in before]


def test_reuse_takes_only_unchanged(stores: StoreFactory) -> None:
    async def go() -> str:
        async with Engine(stores(), registry=registry()) as engine:
            paused = await engine.run(GRAPH, "go")
            with pytest.raises(ValueError) as bad:
                await engine.fork(paused.flow_id, reuse="all")
            return str(bad.value)

    assert asyncio.run(go()) == "reuse must be None or 'unchanged', got 'all'"
