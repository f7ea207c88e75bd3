"""A limited activation's slot is given back by its own commit (#28: one store round
trip per limited activation, taking the slot): on SQLite in the commit's transaction,
on Redis in its script (no `release_slot` call), on the other stores right after it. A refused
commit (its lease taken over) still frees the slot, with a call of its own."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from budget_support import chain

from quartermaster_engine import Engine, NodeResult, SimpleNodeRegistry
from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.runner.key_limits import Rule
from quartermaster_engine.stores.adapter import _done
from quartermaster_engine.stores.base import ReleasesSlotsInCommit
from quartermaster_engine.testing.calls import close_store

KEY = "tenant:acme"


class CountedSlots:
    """The engine's slots (its store's, or its own on memory), counting the calls
    that give one back (a spy over the real store: every call goes through)."""

    def __init__(self, slots: Any) -> None:
        self.slots = slots
        self.releases = 0

    def take_slot(self, key: str, holder: str, limit: int, now: float, expires_at: float) -> Any:
        return self.slots.take_slot(key, holder, limit, now, expires_at)

    def renew_slot(self, key: str, holder: str, expires_at: float) -> Any:
        return self.slots.renew_slot(key, holder, expires_at)

    def release_slot(self, key: str, holder: str) -> Any:
        self.releases += 1
        return self.slots.release_slot(key, holder)

    def slots_in_use(self, now: float) -> Any:
        return self.slots.slots_in_use(now)


def _run(new_store: Any, make_work: Any, names: list[str]) -> tuple[Any, str, dict[str, int], int]:
    """Run a chain of ``names`` (each holding ``KEY``, ``max_in_flight = 1``) on a store
    of ``new_store`` with the executor ``make_work(other, counted)`` returns (``other``:
    a second store object, as another process's); its store, the flow's status, the
    slots held after it and the `release_slot` calls."""
    store, other = new_store(), new_store()

    async def go() -> tuple[str, dict[str, int], int]:
        work: Any = None  # (made once the engine's slots are counted)

        async def llm(ctx: ExecutionContext) -> NodeResult:
            done: NodeResult = await work(ctx)
            return done

        engine = Engine(
            store=store,
            registry=SimpleNodeRegistry({"llm": llm}),
            key_limits={KEY: Rule(max_in_flight=1)},
        )
        assert engine.key_limits is not None
        counted = CountedSlots(engine.key_limits.slots)
        engine.key_limits.slots = counted
        work = make_work(other, counted)
        async with engine:
            result = await engine.run(chain(names), "q")
            after = await engine.key_limits.in_use()
        return result.status.value, after, counted.releases

    try:
        return (store, *asyncio.run(go()))
    finally:
        close_store(store)
        if other is not store:
            close_store(other)


def test_a_limited_activation_gives_its_slot_back_with_its_commit(new_store: Any) -> None:
    seen: list[tuple[str, dict[str, int], int]] = []

    def make_work(other: Any, counted: CountedSlots) -> Any:
        async def work(ctx: ExecutionContext) -> NodeResult:
            # Its own slot is held while it runs; the one before it was given back by
            # that node's commit, which this node's input was read from.
            held = await _done(counted.slots_in_use(time.time()))
            seen.append((ctx.current_node.name, held, counted.releases))
            return NodeResult(output_text="ok")

        return work

    store, status, after, releases = _run(new_store, make_work, ["a", "b", "c"])
    in_commit = isinstance(store, ReleasesSlotsInCommit) and store.releases_slots_in_commit()
    assert status == "completed"
    assert after == {}
    # SQLite, Redis, PostgreSQL: no call of its own (the commit gave it back); memory:
    # one after each commit.
    each = [0, 0, 0] if in_commit else [0, 1, 2]
    assert seen == [(n, {KEY: 1}, r) for n, r in zip(["a", "b", "c"], each, strict=True)]
    assert releases == (0 if in_commit else 3)


def test_a_refused_commit_still_frees_the_slot(new_store: Any) -> None:
    def make_work(other: Any, counted: CountedSlots) -> Any:
        async def work(ctx: ExecutionContext) -> NodeResult:
            # Another process takes the flow over: this activation's commit is refused.
            await _done(other.acquire_lease(ctx.flow_id, "thief", 30.0, take_over=1))
            return NodeResult(output_text="ok")

        return work

    _, status, after, releases = _run(new_store, make_work, ["a"])
    assert (status, after, releases) == ("failed", {}, 1)
