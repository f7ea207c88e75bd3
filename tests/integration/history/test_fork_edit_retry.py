"""Forks, edits and retries on every store kind (memory, SQLite, Redis, PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from history_support import GRAPH, registry

from quartermaster_engine import (
    Engine,
    ExecutionContext,
    FlowStatus,
    NodeResult,
    SimpleNodeRegistry,
)
from quartermaster_engine.history import Checkpoint
from quartermaster_engine.runner import FlowStateError
from quartermaster_engine.testing.graphs import build_graph

StoreFactory = Callable[[], Any]


def _rows(history: list[Checkpoint]) -> list[tuple[Any, ...]]:
    return [
        (c.node_name, c.visit, c.attempt, c.outcome, c.result, dict(c.memory), c.messages)
        for c in history
    ]


def test_a_fork_at_every_checkpoint_ends_as_the_original(stores: StoreFactory) -> None:
    """Deterministic executors: each fork, run on from its checkpoint, commits the
    same records with the same memory and messages, and ends with the same output."""

    async def go() -> tuple[Any, list[Checkpoint], list[tuple[int, Any, list[Checkpoint], Any]]]:
        async with Engine(stores(), registry=registry()) as engine:
            paused = await engine.run(GRAPH, "go")
            await engine.resume(paused.flow_id, "Bob")
            original = await engine.history(paused.flow_id)
            forks = []
            for at in range(len(original) + 1):
                fid = await engine.fork(paused.flow_id, at=at)
                result = await engine.recover(fid)
                if result.status is FlowStatus.PAUSED:
                    result = await engine.resume(fid, "Bob")
                forks.append((at, result, await engine.history(fid), await engine.lineage(fid)))
            return paused.flow_id, original, forks

    source, original, forks = asyncio.run(go())
    assert len(original) == 14
    for at, result, history, lineage in forks:
        assert (result.status, result.final_output) == (FlowStatus.COMPLETED, "hello Bob"), at
        assert _rows(history) == _rows(original), at
        assert lineage == (source, at)


def test_a_fork_with_memory_input_and_answer_runs_the_rest_with_them(
    stores: StoreFactory,
) -> None:
    async def go() -> tuple[Any, list[Checkpoint], Any, list[Checkpoint]]:
        async with Engine(stores(), registry=registry()) as engine:
            paused = await engine.run(GRAPH, "go")
            original = await engine.history(paused.flow_id)
            # At checkpoint 6 (Check, first visit) n is 1: with n=5 the loop ends.
            fid = await engine.fork(paused.flow_id, at=6, memory={"n": 5}, input="again")
            forked = await engine.recover(fid)
            # At the waiting checkpoint, an answer lets the fork finish.
            answered = await engine.fork(paused.flow_id, at=len(original), answer="Ann")
            done = await engine.recover(answered)
            return forked, await engine.history(fid), done, await engine.history(answered)

    forked, history, done, answered_history = asyncio.run(go())
    assert forked.status is FlowStatus.PAUSED
    assert [(c.node_name, c.visit, c.outcome) for c in history] == [
        ("Start", 1, "finished"),
        ("Inc", 1, "finished"),
        ("A", 1, "finished"),
        ("B", 1, "finished"),
        ("J", 1, "finished"),
        ("Check", 1, "finished"),
        ("", 0, "edited"),
        ("Inc", 2, "finished"),
        ("A", 2, "finished"),
        ("B", 2, "finished"),
        ("J", 2, "finished"),
        ("Check", 2, "finished"),
        ("Ask", 1, "waiting_user"),
    ]
    assert dict(history[6].memory) == {"n": 5}
    assert dict(history[7].memory) == {"n": 6}
    assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "hello Ann")
    assert [c.outcome for c in answered_history[-3:]] == ["waiting_user", "finished", "finished"]


def test_a_fork_refuses_a_checkpoint_out_of_range_and_an_answer_nobody_waits_for(
    stores: StoreFactory,
) -> None:
    async def go() -> tuple[UUID, str, str, int]:
        async with Engine(stores(), registry=registry()) as engine:
            paused = await engine.run(GRAPH, "go")
            with pytest.raises(ValueError) as out_of_range:
                await engine.fork(paused.flow_id, at=13)
            with pytest.raises(FlowStateError) as no_wait:
                await engine.fork(paused.flow_id, at=3, answer="x")
            listed = await engine.flows.list()
            return paused.flow_id, str(out_of_range.value), str(no_wait.value), len(listed)

    fid, out_of_range, no_wait, flows = asyncio.run(go())
    assert "a number from 0 to 12, got 13" in out_of_range
    # (The fork was never stored: the error names the flow forked and the checkpoint.)
    assert no_wait == f"answer given but no node of flow {fid} waits for input at checkpoint 3"
    assert flows == 1  # nothing stored for a refused fork


def test_an_edit_of_a_paused_flow_is_seen_by_the_rest_and_shown_in_history(
    stores: StoreFactory,
) -> None:
    async def go() -> tuple[int, Any, list[Checkpoint], str]:
        async with Engine(stores(), registry=registry()) as engine:
            paused = await engine.run(GRAPH, "go")
            seq = await engine.update(paused.flow_id, memory={"n": 7, "note": "checked"})
        async with Engine(stores(), registry=registry()) as other:
            done = await other.resume(paused.flow_id, "Bob")
            history = await other.history(paused.flow_id)
            with pytest.raises(FlowStateError) as refused:
                await other.update(paused.flow_id, memory={"n": 1})
            return seq, done, history, str(refused.value)

    seq, done, history, refused = asyncio.run(go())
    assert seq == 13
    assert done.status is FlowStatus.COMPLETED
    assert [(c.seq, c.node_name, c.outcome) for c in history[11:]] == [
        (12, "Ask", "waiting_user"),
        (13, "", "edited"),
        (14, "Ask", "finished"),
        (15, "End", "finished"),
    ]
    assert dict(history[12].memory) == {"n": 7, "note": "checked"}
    assert dict(history[-1].memory) == {"n": 7, "note": "checked", "who": "Bob"}
    assert refused.endswith("is completed; only a paused, failed or stopped flow can be edited")


FIXED: list[bool] = []


def _flaky(ctx: ExecutionContext) -> NodeResult:
    if not FIXED:
        raise RuntimeError(f"broken with n={ctx.memory['n']}")
    return NodeResult(output_text=f"fixed({ctx.input_text}) n={ctx.memory['n']}")


def _retry_registry(counts: dict[str, int]) -> SimpleNodeRegistry:
    reg = SimpleNodeRegistry()

    def step(ctx: ExecutionContext) -> NodeResult:
        counts[ctx.current_node.name] = counts.get(ctx.current_node.name, 0) + 1
        out = f"{ctx.current_node.name}({ctx.input_text})"
        return NodeResult(output_text=out, data={"memory_updates": {"n": 1}})

    reg.register("step", step)
    reg.register("flaky", _flaky)
    return reg


#: Start -> (A, B) -> Flaky; A -> J; Flaky -> J (AwaitAll) -> End: when Flaky
#: fails, J holds A's delivery, which the store drops with the failed flow.
RETRY_GRAPH = build_graph(
    {
        "Start": "Start1",
        "A": "step",
        "B": "step",
        "Flaky": "flaky",
        "J": {"type": "step", "traverse_in": "AwaitAll"},
        "End": "End1",
    },
    [("Start", "A"), ("Start", "B"), ("B", "Flaky"), ("A", "J"), ("Flaky", "J"), ("J", "End")],
)


def test_a_failed_flow_retried_after_a_fix_continues_from_its_failed_node(
    stores: StoreFactory,
) -> None:
    counts: dict[str, int] = {}
    FIXED.clear()

    async def go() -> tuple[Any, Any, list[Checkpoint]]:
        async with Engine(stores(), registry=_retry_registry(counts)) as engine:
            failed = await engine.run(RETRY_GRAPH, "go")
            await engine.update(failed.flow_id, memory={"n": 41})
        FIXED.append(True)  # the fix: another process, with the executor repaired
        async with Engine(stores(), registry=_retry_registry(counts)) as fixed:
            done = await fixed.retry(failed.flow_id)
            return failed, done, await fixed.history(failed.flow_id)

    failed, done, history = asyncio.run(go())
    assert failed.status is FlowStatus.FAILED
    assert "broken with n=1" in (failed.error or "")
    assert (done.status, done.success) == (FlowStatus.COMPLETED, True)
    assert done.final_output == "J(A(go)\nfixed(B(go)) n=41)"
    assert counts == {"A": 1, "B": 1, "J": 1}  # committed nodes did not run again
    assert [(c.node_name, c.attempt, c.outcome) for c in history] == [
        ("Start", 1, "finished"),
        ("A", 1, "finished"),
        ("B", 1, "finished"),
        ("Flaky", 1, "failed"),
        ("", 0, "edited"),
        ("Flaky", 2, "finished"),
        ("J", 1, "finished"),
        ("End", 1, "finished"),
    ]


def test_retry_refuses_a_flow_that_did_not_fail(stores: StoreFactory) -> None:
    async def go() -> str:
        async with Engine(stores(), registry=registry()) as engine:
            paused = await engine.run(GRAPH, "go")
            with pytest.raises(FlowStateError) as refused:
                await engine.retry(paused.flow_id)
            return str(refused.value)

    assert asyncio.run(go()).endswith("is paused; only a failed flow can be retried")


def _second_time(ctx: ExecutionContext) -> NodeResult:
    if ctx.attempt == 1:
        return NodeResult(success=False, error="first attempt fails")
    return NodeResult(output_text=f"attempt {ctx.attempt}")


#: Start -> Flaky (RETRY, once, no delay) -> End.
RETRYING = build_graph(
    {
        "Start": "Start1",
        "Flaky": {"type": "second", "error_handling": "Retry", "max_retries": 1, "retry_delay": 0},
        "End": "End1",
    },
    [("Start", "Flaky"), ("Flaky", "End")],
)


def test_history_and_forks_of_a_flow_whose_node_was_retried(stores: StoreFactory) -> None:
    async def go() -> tuple[list[Checkpoint], list[tuple[Any, list[Checkpoint]]]]:
        reg = SimpleNodeRegistry({"second": _second_time})
        async with Engine(stores(), registry=reg) as engine:
            done = await engine.run(RETRYING, "go")
            assert done.final_output == "attempt 2"
            history = await engine.history(done.flow_id)
            forks = []
            for at in range(len(history) + 1):
                fid = await engine.fork(done.flow_id, at=at)
                forks.append((await engine.recover(fid), await engine.history(fid)))
            return history, forks

    history, forks = asyncio.run(go())
    assert [(c.node_name, c.attempt, c.outcome, c.error) for c in history] == [
        ("Start", 1, "finished", None),
        ("Flaky", 1, "failed", "first attempt fails"),
        ("Flaky", 2, "finished", None),
        ("End", 1, "finished", None),
    ]
    for at, (result, fork_history) in enumerate(forks):
        assert (result.status, result.final_output) == (FlowStatus.COMPLETED, "attempt 2"), at
        assert _rows(fork_history) == _rows(history), at
