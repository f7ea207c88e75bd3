"""Catching up on what changed (`ReadsChanges`): two steppers take a flow's
activations (fan-outs, AwaitAll and AwaitFirst joins, a decision's dead
branch, a loop, two maps at once, memory writes) in random interleavings
(executing on one, committing on either, several executions open at once);
every state a stepper brings up to date from the changes of the other's commits
equals the state read whole from the store, on the memory, SQLite, Redis and
PostgreSQL stores; each stepper reads the flow whole once."""

from __future__ import annotations

import asyncio
import random
from typing import Any
from uuid import UUID

from race_worker import make_store

from qm_nodes_std.catalog import std_executors
from quartermaster_engine import FlowRunner, FlowStatus, InMemoryStore, NodeResult
from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.nodes import SimpleNodeRegistry
from quartermaster_engine.runner.join_slot import DEAD, MISSING
from quartermaster_engine.runner.queue_refs import ActivationRef
from quartermaster_engine.runner.state import FlowState
from quartermaster_engine.runner.stepper import FlowStepper, Work
from quartermaster_engine.stores.records import Activation
from quartermaster_engine.testing import build_graph
from quartermaster_engine.testing.graphs import branching_graph
from quartermaster_graph import Graph

#: A fan-out of five into an AwaitAll join and an AwaitFirst join, memory written
#: by every branch.
FANS = build_graph(
    {
        "Start": "Start1",
        **{f"b{i}": "work" for i in range(5)},
        "All": {"type": "work", "traverse_in": "AwaitAll"},
        "First": {"type": "work", "traverse_in": "AwaitFirst"},
        "End": {"type": "End1", "traverse_in": "AwaitAll"},
    },
    [
        *[("Start", f"b{i}") for i in range(5)],
        *[(f"b{i}", "All") for i in range(5)],
        *[(f"b{i}", "First") for i in range(3)],
        ("All", "End"),
        ("First", "End"),
    ],
    name="fans",
)


def _two_maps() -> Any:
    """Two Map1 nodes on parallel branches (at most 2 and 9 items at once)."""
    b = Graph("Two maps").var("Docs", variable="docs", expression="input.split()").parallel()
    b.branch().map("Left", items="memory.docs", node="work", max_concurrency=2).end()
    b.branch().map("Right", items="memory.docs[::-1]", node="work", max_concurrency=9).end()
    return b.static_merge("Both").end().build()


def _registry(seed: int) -> SimpleNodeRegistry:
    def work(ctx: ExecutionContext) -> NodeResult:
        name = ctx.current_node.name
        text = f"{name}{ctx.visit}"
        return NodeResult(output_text=text, data={"memory_updates": {name: ctx.visit}})

    def route(ctx: ExecutionContext) -> NodeResult:
        pick = random.Random(seed * 31 + ctx.visit).choice(["left", "right"])
        return NodeResult(output_text=ctx.input_text, picked_node=pick)

    def again(ctx: ExecutionContext) -> NodeResult:
        return NodeResult(output_text="c", picked_node="again" if ctx.visit < 3 else "done")

    return SimpleNodeRegistry({**std_executors(), "work": work, "route": route, "again": again})


def _act(act: Activation) -> tuple[Any, ...]:
    return (str(act.node_id), act.visit, act.attempt, act.waiting, act.not_before, act.inputs)


def _got(source: Any) -> Any:
    if source is MISSING:
        return "missing"
    if source is DEAD:
        return "dead"
    return (str(source.node_id), source.visit, source.attempt)


def picture(state: FlowState) -> dict[str, Any]:
    """What a state holds, comparable between two states of one flow."""
    return {
        "ready": sorted(_act(a) for a in state.ready),
        "timers": sorted(_act(a) for _, _, a in state.timers),
        "waiting": sorted(_act(a) for a in state.waiting.values()),
        "children": sorted(_act(a) for a in state.children.values()),
        "joins": {
            idx: [(s.no, [_got(g) for g in s.got], s.count, s.live, s.fired) for s in slots]
            for idx, slots in state.joins.items()
        },
        "memory": state.memory,
        # A mapped node's visits come from its map's base, not from this counter
        # (which a process that queued the items does not advance).
        "visits": [
            None if n.item_of is not None else v for n, v in zip(state.cg.nodes, state.visits)
        ],
        "loop_active": state.loop_active,
        "loop_live": [sorted(live) for live in state.loop_live],
        "failures": [(c.name, text) for c, text in state.failures],
        "latest": [None if r is None else (r.visit, r.attempt) for r in state.latest],
        "records": sorted((str(k[0]), k[1]) for k in state.records_by_key),
        "record_count": state.record_count,
        "maps": {
            key: (sorted(run.pending), sorted(run.ended), run.failed)
            for key, run in state.maps.items()
        },
    }


class CountingReads:
    """Counts the whole reads (`load_flow`) the steppers make of a store."""

    def __init__(self, store: Any) -> None:
        self.whole = 0
        inner = store.load_flow

        async def load_flow(flow_id: UUID, *, records_after: int = 0) -> Any:
            self.whole += 1
            return await inner(flow_id, records_after=records_after)

        def load_flow_sync(flow_id: UUID, *, records_after: int = 0) -> Any:
            self.whole += 1
            return inner(flow_id, records_after=records_after)

        sync = isinstance(store, InMemoryStore)
        store.load_flow = load_flow_sync if sync else load_flow


async def _whole(runner: FlowRunner, fid: UUID) -> dict[str, Any]:
    stepper = FlowStepper(runner)
    await stepper.pending(fid)
    state = stepper.held_state(fid)
    assert state is not None
    return picture(state)


async def _interleave(store: Any, graph: Any, seed: int, text: str) -> tuple[int, int]:
    """One flow taken in a random interleaving; (catch-ups compared, whole reads)."""
    rng = random.Random(seed)
    runner = FlowRunner(graph, _registry(seed), store=store)
    reads = CountingReads(store)
    steppers = [FlowStepper(runner), FlowStepper(runner)]
    fid = await runner.asubmit(text)
    queue: list[ActivationRef] = [ref for ref, _ in await steppers[0].pending(fid)]
    await steppers[1].pending(fid)
    open_work: list[Work] = []
    compared = 0
    status = FlowStatus.RUNNING
    while queue or open_work:
        if queue and (not open_work or rng.random() < 0.6):
            ref = queue.pop(rng.randrange(len(queue)))
            stepper = rng.choice(steppers)
            held = stepper.held_state(fid)
            before = None if held is None else held.record_count
            work = await stepper.execute(fid, ref)
            assert work is not None, f"{ref} was pending"
            open_work.append(work)
            state = stepper.held_state(fid)
            assert state is not None
            if before is not None:
                whole_reads = reads.whole
                held_now, whole = picture(state), await _whole(runner, fid)
                reads.whole = whole_reads
                if state.record_count == before:
                    # Nothing read (no one else committed): a state keeps its own
                    # records unread until it next reads the store.
                    for part in ("records", "record_count"):
                        del held_now[part], whole[part]
                else:
                    compared += 1
                assert held_now == whole, f"seed {seed}, caught up: {state.record_count != before}"
            continue
        work = open_work.pop(rng.randrange(len(open_work)))
        result = await rng.choice(steppers).complete(work)
        assert not result.duplicate
        queue.extend(q for q, _ in result.queued)
        status = result.status
    assert status is FlowStatus.COMPLETED, f"seed {seed}: {status}"
    return compared, reads.whole


async def _check(store: Any, seeds: range) -> tuple[int, int]:
    """Every interleaving of ``seeds`` over both graphs; (catch-ups compared, whole
    reads), in all."""
    compared = whole = 0
    try:
        for graph, text in ((branching_graph(), "go"), (FANS, "go"), (_two_maps(), "a b c d e")):
            for seed in seeds:
                caught_up, read = await _interleave(store, graph, seed, text)
                # Each stepper reads the flow whole once, when it takes it over
                # (pending): the rest are catch-ups or nothing to read.
                assert read == 2, f"seed {seed}: {read} whole reads"
                compared += caught_up
                whole += read
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            result = close()
            if asyncio.iscoroutine(result):
                await result
    return compared, whole


def test_catching_up_equals_a_whole_read_in_memory() -> None:
    compared, _ = asyncio.run(_check(InMemoryStore(), range(12)))
    assert compared >= 100


def test_catching_up_equals_a_whole_read(store_spec: dict[str, Any]) -> None:
    compared, _ = asyncio.run(_check(make_store(store_spec), range(4)))
    assert compared >= 30
