"""A limited activation's slot is given back by its own commit (#28: one store round
trip per limited activation, taking the slot): on SQLite in the commit's transaction,
on Redis in its script (no `release_slot` call), on the other stores right after it. A refused
commit (its lease taken over) still frees the slot, with a call of its own."""

from __future__ import annotations

import asyncio
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


def _engine(store: Any, work: Any) -> tuple[Engine, CountedSlots]:
    engine = Engine(
        store=store,
        registry=SimpleNodeRegistry({"llm": work}),
        key_limits={KEY: Rule(max_in_flight=1)},
    )
    assert engine.key_limits is not None
    counted = CountedSlots(engine.key_limits.slots)
    engine.key_limits.slots = counted
    return engine, counted


def test_a_limited_activation_gives_its_slot_back_with_its_commit(new_store: Any) -> None:
    store, watcher = new_store(), new_store()
    seen: list[tuple[str, dict[str, int], int]] = []

    async def go() -> tuple[str, dict[str, int], int]:
        async def work(ctx: ExecutionContext) -> NodeResult:
            # Its own slot is held while it runs; the one before it was given back by
            # that node's commit, which this node's input was read from.
            held = await engine.key_limits.in_use()  # type: ignore[union-attr]
            seen.append((ctx.current_node.name, held, counted.releases))
            return NodeResult(output_text="ok")

        engine, counted = _engine(store, work)
        async with engine:
            result = await engine.run(chain(["a", "b", "c"]), "q")
            after = await engine.key_limits.in_use()  # type: ignore[union-attr]
        return result.status.value, after, counted.releases

    try:
        status, after, releases = asyncio.run(go())
    finally:
        close_store(store)
        if watcher is not store:
            close_store(watcher)
    in_commit = isinstance(store, ReleasesSlotsInCommit) and store.releases_slots_in_commit()
    assert status == "completed"
    assert after == {}
    # SQLite, Redis: no call of its own (the commit gave it back); else one per node.
    each = [0, 0, 0] if in_commit else [0, 1, 2]
    assert seen == [(n, {KEY: 1}, r) for n, r in zip(["a", "b", "c"], each, strict=True)]
    assert releases == (0 if in_commit else 3)


def test_a_refused_commit_still_frees_the_slot(new_store: Any) -> None:
    store, thief = new_store(), new_store()

    async def go() -> tuple[str, dict[str, int], int]:
        async def work(ctx: ExecutionContext) -> NodeResult:
            # Another process takes the flow over: this activation's commit is refused.
            await _done(thief.acquire_lease(ctx.flow_id, "thief", 30.0, take_over=1))
            return NodeResult(output_text="ok")

        engine, counted = _engine(store, work)
        async with engine:
            result = await engine.run(chain(["a"]), "q")
            after = await engine.key_limits.in_use()  # type: ignore[union-attr]
        return result.status.value, after, counted.releases

    try:
        status, after, releases = asyncio.run(go())
    finally:
        close_store(store)
        if thief is not store:
            close_store(thief)
    assert (status, after, releases) == ("failed", {}, 1)
