"""A limited activation's slot is given back by its own commit (#28: one store round
trip per limited activation, taking the slot): on SQLite in the commit's transaction,
on Redis in its script (no `release_slot` call), on the other stores right after it. A refused
commit (its lease taken over) still frees the slot, with a call of its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from budget_support import chain, drive_as_workers

from quartermaster_engine import Engine, NodeResult, SimpleNodeRegistry
from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.runner.key_limits import Rule
from quartermaster_engine.runner.stepper import FlowStepper
from quartermaster_engine.stores.adapter import _done
from quartermaster_engine.stores.base import ReleasesSlotsInCommit
from quartermaster_engine.testing.calls import close_store
from quartermaster_engine.types import GraphSpec

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


Drive = Callable[[Engine, GraphSpec], Awaitable[str]]


async def _in_process(engine: Engine, graph: GraphSpec) -> str:
    return (await engine.run(graph, "q")).status.value


async def _as_workers(engine: Engine, graph: GraphSpec) -> str:
    """As a worker (``qm worker``) runs it: each activation executed by
    `FlowStepper.execute`, then committed by `FlowStepper.complete`."""
    last = await drive_as_workers(engine, await engine.submit(graph, "q"))
    return str(last.status.value)


def _run(
    new_store: Any,
    make_work: Any,
    names: list[str],
    drive: Drive = _in_process,
    limit: int = 1,
) -> tuple[Any, str, dict[str, int], int]:
    """Run a chain of ``names`` (each holding ``KEY``, ``max_in_flight = limit``) on a
    store of ``new_store`` with the executor ``make_work(other, counted)`` returns
    (``other``: a second store object, as another process's) by ``drive``; its store,
    the flow's status, the slots held after it and the `release_slot` calls."""
    store, other = new_store(), new_store()

    async def go() -> tuple[str, dict[str, int], int]:
        work: Any = None  # (made once the engine's slots are counted)

        async def llm(ctx: ExecutionContext) -> NodeResult:
            done: NodeResult = await work(ctx)
            return done

        engine = Engine(
            store=store,
            registry=SimpleNodeRegistry({"llm": llm}),
            key_limits={KEY: Rule(max_in_flight=limit)},
        )
        assert engine.key_limits is not None
        counted = CountedSlots(engine.key_limits.slots)
        engine.key_limits.slots = counted
        work = make_work(other, counted)
        async with engine:
            status = await drive(engine, chain(names))
            after = await engine.key_limits.in_use()
        return status, after, counted.releases

    try:
        return (store, *asyncio.run(go()))
    finally:
        close_store(store)
        if other is not store:
            close_store(other)


@pytest.mark.parametrize("drive", [_in_process, _as_workers], ids=["in-process", "as-workers"])
def test_a_limited_activation_gives_its_slot_back_with_its_commit(
    new_store: Any, drive: Drive
) -> None:
    """Also as a worker runs it: the slots travel from `execute` to `complete`'s commit
    (#28: one round trip per limited activation on a Celery fleet too)."""
    seen: list[tuple[str, dict[str, int], int]] = []

    def make_work(other: Any, counted: CountedSlots) -> Any:
        async def work(ctx: ExecutionContext) -> NodeResult:
            # Its own slot is held while it runs; the one before it was given back by
            # that node's commit, which this node's input was read from.
            held = await _done(counted.slots_in_use(time.time()))
            seen.append((ctx.current_node.name, held, counted.releases))
            return NodeResult(output_text="ok")

        return work

    store, status, after, releases = _run(new_store, make_work, ["a", "b", "c"], drive)
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


async def _past_start(engine: Engine, stepper: FlowStepper, graph: GraphSpec) -> Any:
    """A new flow of ``graph`` whose Start ``stepper`` ran: its id, and the ref of the
    activation queued next."""
    flow_id = await engine.submit(graph, "q")
    ((start, _),) = await stepper.pending(flow_id)
    start_work = await stepper.execute(flow_id, start)
    assert start_work is not None
    ((ref, _),) = (await stepper.complete(start_work)).queued
    return flow_id, ref


def _ok(other: Any, counted: CountedSlots) -> Any:
    """`_run`'s ``make_work`` of an executor that only answers."""

    async def work(ctx: ExecutionContext) -> NodeResult:
        return NodeResult(output_text="ok")

    return work


async def _executed_twice(engine: Engine, graph: GraphSpec) -> str:
    """As two workers given one activation's task (a duplicate delivery): both execute
    ``a`` (each taking a slot), both complete it; the second complete is a duplicate."""
    one, two = FlowStepper(engine), FlowStepper(engine)
    flow_id, ref = await _past_start(engine, one, graph)
    first, second = await one.execute(flow_id, ref), await two.execute(flow_id, ref)
    assert first is not None
    assert second is not None
    done = await one.complete(first)
    assert not done.duplicate
    assert (await two.complete(second)).duplicate
    return str((await drive_as_workers(engine, flow_id, one, done.queued)).status.value)


def test_a_duplicates_slot_is_freed_with_a_call_of_its_own(new_store: Any) -> None:
    """The duplicate's commit is never written: its slot is released by a call; the
    accepted one's went with its commit (on memory, both by calls)."""
    store, status, after, releases = _run(new_store, _ok, ["a"], _executed_twice, 2)
    in_commit = isinstance(store, ReleasesSlotsInCommit) and store.releases_slots_in_commit()
    assert (status, after, releases) == ("completed", {}, 1 if in_commit else 2)


def test_a_workers_slots_stay_renewed_until_complete_commits(new_store: Any) -> None:
    """Between `execute` and `complete` (a worker waiting for the flow's lease) the
    slot is still renewed: held after twice its ttl (0.6 s), given back by the commit."""
    store = new_store()

    async def go() -> tuple[dict[str, int], dict[str, int]]:
        async def llm(ctx: ExecutionContext) -> NodeResult:
            return NodeResult(output_text="ok")

        engine = Engine(
            store=store,
            registry=SimpleNodeRegistry({"llm": llm}),
            key_limits={KEY: Rule(max_in_flight=1)},
            lease_seconds=0.6,
        )
        assert engine.key_limits is not None
        async with engine:
            stepper = FlowStepper(engine)
            flow_id, ref = await _past_start(engine, stepper, chain(["a"]))
            work = await stepper.execute(flow_id, ref)
            assert work is not None
            await asyncio.sleep(1.2)
            held = await engine.key_limits.in_use()
            await stepper.complete(work)
            return held, await engine.key_limits.in_use()

    try:
        assert asyncio.run(go()) == ({KEY: 1}, {})
    finally:
        close_store(store)


async def _lease_busy_at_complete(engine: Engine, graph: GraphSpec) -> str:
    """As a worker whose `complete` finds the flow's lease held by another (0.5 s
    left): it gives its slot back before it waits, then commits."""
    stepper = FlowStepper(engine)
    flow_id, ref = await _past_start(engine, stepper, graph)
    work = await stepper.execute(flow_id, ref)
    assert work is not None
    await engine.store_adapter.acquire_lease(flow_id, "another-worker", 0.5)
    done = await stepper.complete(work)
    return str((await drive_as_workers(engine, flow_id, stepper, done.queued)).status.value)


def test_slots_are_not_held_while_complete_waits_for_the_flows_lease(new_store: Any) -> None:
    """A wide flow's commits queue for its lease: a slot held meanwhile would idle. It
    is given back with a call of its own (on every store) before the wait."""
    _, status, after, releases = _run(new_store, _ok, ["a"], _lease_busy_at_complete)
    assert (status, after, releases) == ("completed", {}, 1)
