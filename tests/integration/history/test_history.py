"""`engine.history`: one checkpoint per commit, read back from every store kind
(memory, SQLite, Redis, PostgreSQL), by an engine that did not run the flow."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest
from history_support import GRAPH, registry

from quartermaster_engine import (
    Engine,
    FlowStatus,
)
from quartermaster_engine.history import Checkpoint
from quartermaster_engine.stores.base import FlowNotFoundError

#: Makes a new store object over the test's store (the `stores` fixture).
StoreFactory = Callable[[], Any]


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
