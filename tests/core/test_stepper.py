"""FlowStepper's split of a step: executor work outside the flow's lease (so one
flow's branches run at once on several workers), bookkeeping under it."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from quartermaster_engine import FlowRunner, FlowStatus, InMemoryStore, SimpleNodeRegistry
from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.runner.stepper import FlowStepper
from quartermaster_engine.testing import build_graph, call
from quartermaster_engine.testing.graphs import name_id

FAN = build_graph(
    {
        "Start": "Start1",
        "A": "slow",
        "B": "slow",
        "C": "slow",
        "J": {"type": "join", "traverse_in": "AwaitAll"},
        "End": "End1",
    },
    [
        ("Start", "A"),
        ("Start", "B"),
        ("Start", "C"),
        ("A", "J"),
        ("B", "J"),
        ("C", "J"),
        ("J", "End"),
    ],
)


def _registry(ran: Counter[str], inside: list[int], peak: list[int]) -> SimpleNodeRegistry:
    async def slow(ctx: ExecutionContext) -> str:
        ran[ctx.current_node.name] += 1
        inside[0] += 1
        peak[0] = max(peak[0], inside[0])
        await asyncio.sleep(0.05)
        inside[0] -= 1
        return ctx.current_node.name

    def join(ctx: ExecutionContext) -> str:
        ran["J"] += 1
        return "+".join(sorted(ctx.input_text.split("\n")))

    return SimpleNodeRegistry({"slow": slow, "join": join})


def test_branches_execute_at_once_and_commit_one_by_one() -> None:
    asyncio.run(_branches())


async def _branches() -> None:
    store = InMemoryStore()
    ran: Counter[str] = Counter()
    inside, peak = [0], [0]
    runner = FlowRunner(FAN, _registry(ran, inside, peak), store=store)
    workers = [FlowStepper(runner), FlowStepper(runner), FlowStepper(runner)]
    fid = await runner.asubmit("go")
    ((start, due),) = await workers[0].pending(fid)
    assert (start, due) == ((name_id("Start"), 1, 1), 0.0)
    work = await workers[0].execute(fid, start)
    assert work is not None
    first = await workers[0].complete(work)
    assert first.ran == "Start"
    assert sorted(q[0][0] for q in first.queued) == sorted(name_id(n) for n in "ABC")

    # Three workers run the branches at the same time, none holding the lease.
    works = await asyncio.gather(
        *(w.execute(fid, ref) for w, (ref, _) in zip(workers, first.queued))
    )
    assert peak[0] == 3
    results = [await workers[i].complete(w) for i, w in enumerate(works) if w is not None]
    assert [r.status for r in results] == [FlowStatus.RUNNING] * 3
    # Only the last branch's commit fires the join, once.
    assert [len(r.queued) for r in results] == [0, 0, 1]
    ((join_ref, _),) = results[-1].queued
    assert join_ref == (name_id("J"), 1, 1)

    # A duplicate delivery of a committed branch: executing it is refused, and
    # completing work done twice changes nothing.
    assert await workers[0].execute(fid, first.queued[0][0]) is None
    again = await workers[1].complete(works[0])  # type: ignore[arg-type]
    assert again.duplicate is True
    assert again.queued == ()

    join_work = await workers[2].execute(fid, join_ref)
    assert join_work is not None
    end = await workers[0].complete(join_work)
    ((end_ref, _),) = end.queued
    last = await workers[1].complete(await workers[1].execute(fid, end_ref))  # type: ignore[arg-type]
    assert last.status is FlowStatus.COMPLETED
    assert last.result is not None
    assert last.result.final_output == "A+B+C"
    assert ran == {"A": 1, "B": 1, "C": 1, "J": 1}
    snap = call(store, "load_flow", fid)
    assert Counter(r.node_id for r in snap.records) == {name_id(n): 1 for n in FAN_NAMES}
    events = call(store, "read_events", fid)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    kinds: Counter[Any] = Counter(e.type for e in events)
    assert (kinds["NodeStarted"], kinds["NodeFinished"], kinds["FlowFinished"]) == (6, 6, 1)


FAN_NAMES = ["Start", "A", "B", "C", "J", "End"]


class FrontierCountingStore(InMemoryStore):
    """The in-memory store, counting the reads of a flow's whole frontier."""

    def __init__(self) -> None:
        super().__init__()
        self.frontier_reads = 0

    def load_flow(self, flow_id: Any, *, records_after: int = 0) -> Any:
        self.frontier_reads += 1
        return super().load_flow(flow_id, records_after=records_after)


def _fan(width: int) -> Any:
    nodes: dict[str, Any] = {"Start": "Start1"}
    nodes.update({f"b{i}": "name" for i in range(width)})
    nodes["J"] = {"type": "join", "traverse_in": "AwaitAll"}
    nodes["End"] = "End1"
    edges = [("Start", f"b{i}") for i in range(width)] + [(f"b{i}", "J") for i in range(width)]
    return build_graph(nodes, [*edges, ("J", "End")])


def test_a_lone_worker_reads_the_frontier_a_fixed_number_of_times_at_any_width() -> None:
    """Nothing committed by others since a stepper's own commit: the flow record's
    version says so, and neither execute nor complete reads the frontier; commits
    by others: their kept changes are read, not the frontier."""

    async def scenario(width: int, interleave: bool) -> tuple[int, str | None]:
        store = FrontierCountingStore()
        registry = SimpleNodeRegistry(
            {
                "name": lambda ctx: ctx.current_node.name,
                "join": lambda ctx: str(len(ctx.input_text.split("\n"))),
            }
        )
        runner = FlowRunner(_fan(width), registry, store=store)
        worker, other = FlowStepper(runner), FlowStepper(runner)
        fid = await runner.asubmit("go")
        queue = [ref for ref, _ in await worker.pending(fid)]
        last = None
        while queue:
            ref = queue.pop(0)
            # With interleave, another worker takes every fifth activation.
            stepper = other if interleave and ref[0] == name_id("b5") else worker
            work = await stepper.execute(fid, ref)
            assert work is not None
            last = await stepper.complete(work)
            queue.extend(q for q, _ in last.queued)
        assert last is not None
        assert last.result is not None
        assert last.status is FlowStatus.COMPLETED
        return store.frontier_reads, last.result.final_output

    # pending; nothing more whatever the width.
    assert asyncio.run(scenario(10, False)) == (1, str(10))
    assert asyncio.run(scenario(60, False)) == (1, str(60))
    # Another worker's commit in between: that worker reads the flow once (its first
    # execute); this one catches up on the change of its commit (`ReadsChanges`).
    assert asyncio.run(scenario(60, True)) == (1 + 1, str(60))
