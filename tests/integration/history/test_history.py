"""`engine.history`: one checkpoint per commit, read back from every store kind
(memory, SQLite, Redis, PostgreSQL), by an engine that did not run the flow."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest

from quartermaster_engine import (
    Engine,
    ExecutionContext,
    FlowStatus,
    NodeResult,
    SimpleNodeRegistry,
)
from quartermaster_engine.history import Checkpoint
from quartermaster_engine.stores.base import FlowNotFoundError
from quartermaster_engine.testing.graphs import build_graph

#: Makes a new store object over the test's store (the `stores` fixture).
StoreFactory = Callable[[], Any]


def _inc(ctx: ExecutionContext) -> NodeResult:
    n = ctx.memory.get("n", 0) + 1
    return NodeResult(output_text=str(n), data={"memory_updates": {"n": n}})


def _check(ctx: ExecutionContext) -> NodeResult:
    again = ctx.memory["n"] < 2
    return NodeResult(output_text=ctx.input_text, picked_node="again" if again else "done")


def _step(ctx: ExecutionContext) -> NodeResult:
    return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")


def _ask(ctx: ExecutionContext) -> NodeResult:
    if ctx.user_input is None:
        return NodeResult(wait_for_user=True, user_prompt="Name?")
    return NodeResult(
        output_text=f"hello {ctx.user_input}", data={"memory_updates": {"who": ctx.user_input}}
    )


def registry() -> SimpleNodeRegistry:
    reg = SimpleNodeRegistry()
    for node_type, fn in (("inc", _inc), ("check", _check), ("step", _step), ("ask", _ask)):
        reg.register(node_type, fn)
    return reg


#: A decision, a join and a loop, then a pause: Start -> Inc -> (A, B) -> J ->
#: Check -again-> Inc; Check -done-> Ask -> End.
GRAPH = build_graph(
    {
        "Start": "Start1",
        "Inc": "inc",
        "A": "step",
        "B": "step",
        "J": {"type": "step", "traverse_in": "AwaitAll"},
        "Check": {"type": "check", "traverse_out": "SpawnPickedNode"},
        "Ask": "ask",
        "End": "End1",
    },
    [
        ("Start", "Inc"),
        ("Inc", "A"),
        ("Inc", "B"),
        ("A", "J"),
        ("B", "J"),
        ("J", "Check"),
        ("Check", "Inc", "again"),
        ("Check", "Ask", "done"),
        ("Ask", "End"),
    ],
)

LOOP = [
    ("Inc", 1, "finished"),
    ("A", 1, "finished"),
    ("B", 1, "finished"),
    ("J", 1, "finished"),
    ("Check", 1, "finished"),
]
BEFORE_ANSWER = [
    ("Start", 1, "finished"),
    *LOOP,
    *[(node, 2, outcome) for node, _, outcome in LOOP],
    ("Ask", 1, "waiting_user"),
]
AFTER_ANSWER = [*BEFORE_ANSWER, ("Ask", 1, "finished"), ("End", 1, "finished")]


def _rows(history: list[Checkpoint]) -> list[tuple[str, int, str]]:
    return [(c.node_name, c.visit, c.outcome) for c in history]


def test_history_has_one_checkpoint_per_commit_with_memory_and_messages(
    stores: StoreFactory,
) -> None:
    async def go() -> tuple[Any, list[Checkpoint], list[Checkpoint]]:
        async with Engine(stores(), registry=registry()) as engine:
            paused = await engine.run(GRAPH, "go")
        # Another engine, with a store object of its own, reads what the store keeps.
        async with Engine(stores(), registry=registry()) as reader:
            before = await reader.history(paused.flow_id)
            done = await reader.resume(paused.flow_id, "Bob")
            after = await reader.history(str(paused.flow_id))
        return done, before, after

    done, before, after = asyncio.run(go())
    assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "hello Bob")
    assert _rows(before) == BEFORE_ANSWER
    assert _rows(after) == AFTER_ANSWER
    assert [c.seq for c in after] == list(range(1, len(AFTER_ANSWER) + 1))
    assert [c.to_dict(with_messages=False) for c in after[: len(before)]] == [
        c.to_dict(with_messages=False) for c in before
    ]
    # Memory as it stood after each commit: n counts the loop, who is set by the answer.
    assert [dict(c.memory) for c in after] == [
        {},
        *[{"n": 1}] * 5,
        *[{"n": 2}] * 5,
        {"n": 2},
        {"n": 2, "who": "Bob"},
        {"n": 2, "who": "Bob"},
    ]
    assert all(c.attempt == 1 and c.error is None for c in after)
    assert [c.result for c in after if c.node_name == "J"] == ["J(A(1)\nB(1))", "J(A(2)\nB(2))"]
    ask = after[-2]
    assert [m.to_dict() for m in ask.messages] == [
        {"role": "user", "content": "Bob"},
        {"role": "assistant", "content": "hello Bob"},
    ]
    assert after[-1].messages[-1].content == "hello Bob"
    times = [c.time for c in after]
    assert all(t is not None for t in times)
    assert times == sorted(times)  # type: ignore[type-var]


def test_history_of_an_unknown_flow_names_it_and_the_store(stores: StoreFactory) -> None:
    missing = uuid4()

    async def go() -> None:
        async with Engine(stores(), registry=registry()) as engine:
            await engine.history(missing)

    with pytest.raises(FlowNotFoundError, match=f"no flow {missing} in the store"):
        asyncio.run(go())
