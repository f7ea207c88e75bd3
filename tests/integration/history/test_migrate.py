"""Migration of flows in flight to a new graph version (`Engine.migrate`), each rule
on every store kind (memory, SQLite, Redis, PostgreSQL): what moves, what is refused
(exact texts), that the moved flow then runs the new graph's nodes, and that a dry
run changes nothing."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from history_support import GRAPH, GRAPH_V2, LOOP, NODES, registry

from qm_store_sqlite import SQLiteStore
from quartermaster_engine import (
    Engine,
    FlowRunner,
    FlowStatus,
    InMemoryStore,
    NodeResult,
    SimpleNodeRegistry,
)
from quartermaster_engine.events import FlowMigrated
from quartermaster_engine.history.migrate import MigrationReport
from quartermaster_engine.stores.graphs import graph_digest
from quartermaster_engine.testing import TestClock
from quartermaster_engine.testing.graphs import build_graph
from quartermaster_engine.testing.task_fleet import TaskFleet
from quartermaster_engine.types import GraphSpec
from quartermaster_graph import GraphBuilder

#: Version 2: a node "Polish" between Ask and End.
V2 = GRAPH_V2
#: Version 3: Ask renamed Question.
V3 = build_graph(
    {**{k: v for k, v in NODES.items() if k != "Ask"}, "Question": "ask"},
    [*LOOP, ("Check", "Question", "done"), ("Question", "End")],
    name="v3",
)
#: Version 4: only Start -> Ask -> End (the loop and join are gone).
V4 = build_graph(
    {"Start": "Start1", "Ask": "ask", "End": "End1"}, [("Start", "Ask"), ("Ask", "End")], name="v4"
)

#: A pause beside a join: Start -> A -> J, Start -> W (waits) -> J; J -> End.
JOINED = build_graph(
    {
        "Start": "Start1",
        "A": "step",
        "W": "ask",
        "J": {"type": "step", "traverse_in": "AwaitAll"},
        "End": "End1",
    },
    [("Start", "A"), ("Start", "W"), ("A", "J"), ("W", "J"), ("J", "End")],
    name="joined",
)
#: J now also waits for B, which only Start reaches: nothing pending can reach it.
JOINED_STUCK = build_graph(
    {
        "Start": "Start1",
        "A": "step",
        "B": "step",
        "W": "ask",
        "J": {"type": "step", "traverse_in": "AwaitAll"},
        "End": "End1",
    },
    [
        ("Start", "A"),
        ("Start", "B"),
        ("Start", "W"),
        ("A", "J"),
        ("W", "J"),
        ("B", "J"),
        ("J", "End"),
    ],
    name="joined-stuck",
)


@pytest.fixture
def make_store(stores: Any) -> Any:
    """Store objects over one store of each kind (memory, SQLite, Redis, PostgreSQL;
    the conftest's `stores`)."""
    return stores


def _runs(history: list[Any]) -> Counter[str]:
    return Counter(c.node_name for c in history if c.outcome == "finished")


def test_a_paused_flow_moves_and_runs_the_new_graph(make_store: Any) -> None:
    async def go() -> tuple[MigrationReport, Any, list[Any], list[Any], GraphSpec]:
        async with Engine(make_store(), registry=registry()) as engine:
            paused = await engine.run(GRAPH, "go")
            report = await engine.migrate(paused.flow_id, V2)
        async with Engine(make_store(), registry=registry()) as other:
            done = await other.resume(paused.flow_id, "Bob")
            events = [e async for e in other.events(paused.flow_id)]
            record = await other.store_adapter.get_flow(paused.flow_id)
            assert record is not None
            return report, done, await other.history(paused.flow_id), events, record.graph

    report, done, history, events, stored = asyncio.run(go())
    assert report.outcome == "migrated"
    assert report.reason == ""
    assert report.mapping == {n: n for n in NODES}
    assert report.line() == f"{report.flow_id} migrated"
    assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "Polish(hello Bob)")
    assert _runs(history) == {
        "Start": 1,
        "Inc": 2,
        "A": 2,
        "B": 2,
        "J": 2,
        "Check": 2,
        "Ask": 1,
        "Polish": 1,
        "End": 1,
    }
    moved = [e for e in events if isinstance(e, FlowMigrated)]
    assert len(moved) == 1
    assert moved[0].from_graph == graph_digest(GRAPH)
    assert moved[0].to_graph == graph_digest(stored)
    assert (moved[0].graph_name, moved[0].mapping) == ("v2", report.mapping)
    # Graph files' and build_graph's node ids come from names: the stored graph is
    # V2 with only edge ids aligned to the old graph's.
    assert [(n.id, n.name) for n in stored.nodes] == [(n.id, n.name) for n in V2.nodes]


def test_a_renamed_node_is_refused_without_a_mapping_and_moves_with_one(make_store: Any) -> None:
    async def go() -> tuple[MigrationReport, MigrationReport, Any, list[Any]]:
        async with Engine(make_store(), registry=registry()) as engine:
            paused = await engine.run(GRAPH, "go")
            refused = await engine.migrate(paused.flow_id, V3)
            moved = await engine.migrate(paused.flow_id, V3, {"Ask": "Question"})
            done = await engine.resume(paused.flow_id, "Ann")
            return refused, moved, done, await engine.history(paused.flow_id)

    refused, moved, done, history = asyncio.run(go())
    fid = refused.flow_id
    assert refused.outcome == "refused"
    assert refused.error == "MigrationRefused"
    assert refused.reason == (
        f"node 'Ask' of flow {fid} (waiting for input) has no node in the new graph 'v3'; "
        "name one with --map Ask=NEW"
    )
    assert refused.line() == f"{fid} refused: {refused.reason}"
    assert moved.outcome == "migrated"
    assert moved.mapping["Ask"] == "Question"
    assert moved.line() == f"{fid} migrated (Ask=Question)"
    assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "hello Ann")
    # The waiting activation keeps its id: its record is now the Question node's.
    assert [(c.node_name, c.outcome) for c in history[-3:]] == [
        ("Question", "waiting_user"),
        ("Question", "finished"),
        ("End", "finished"),
    ]


def test_nodes_the_new_graph_dropped_stay_in_the_history(make_store: Any) -> None:
    async def go() -> tuple[MigrationReport, Any, list[Any]]:
        async with Engine(make_store(), registry=registry()) as engine:
            paused = await engine.run(GRAPH, "go")
            report = await engine.migrate(paused.flow_id, V4)
        async with Engine(make_store(), registry=registry()) as other:
            done = await other.resume(paused.flow_id, "Eve")
            return report, done, await other.history(paused.flow_id)

    report, done, history = asyncio.run(go())
    assert report.mapping == {"Start": "Start", "Ask": "Ask", "End": "End"}
    assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "hello Eve")
    assert len(history) == 14  # the 12 records before, Ask answered, End
    # A dropped node's records keep its id; the history names it from FlowMigrated.
    assert (_runs(history)["Inc"], _runs(history)["Ask"], _runs(history)["End"]) == (2, 1, 1)
    assert [c.node_name for c in history[:6]] == ["Start", "Inc", "A", "B", "J", "Check"]


def test_a_dry_run_changes_nothing(make_store: Any) -> None:
    async def go() -> tuple[MigrationReport, MigrationReport, Any, Any, int, int]:
        async with Engine(make_store(), registry=registry()) as engine:
            paused = await engine.run(GRAPH, "go")
            fid = paused.flow_id
            before = await engine.store_adapter.get_flow(fid)
            events = len(await engine.store_adapter.read_events(fid))
            would = await engine.migrate(fid, V2, dry_run=True)
            would_not = await engine.migrate(fid, V3, dry_run=True)
            after = await engine.store_adapter.get_flow(fid)
            return (
                would,
                would_not,
                before,
                after,
                events,
                len(await engine.store_adapter.read_events(fid)),
            )

    would, would_not, before, after, events_before, events_after = asyncio.run(go())
    assert would.outcome == "would-migrate"
    assert would.line() == f"{would.flow_id} would migrate"
    assert would_not.outcome == "refused"
    assert "(waiting for input) has no node in the new graph 'v3'" in would_not.reason
    assert after.graph == before.graph == GRAPH
    assert (after.lease_epoch, after.event_seq, after.version) == (
        before.lease_epoch,
        before.event_seq,
        before.version,
    )
    assert events_after == events_before


def test_completed_running_and_unknown_flows_are_refused(make_store: Any) -> None:
    async def go() -> tuple[MigrationReport, MigrationReport, MigrationReport, Any]:
        async with Engine(make_store(), registry=registry()) as engine:
            paused = await engine.run(GRAPH, "go")
            done = await engine.resume(paused.flow_id, "Bob")
            ended = await engine.migrate(done.flow_id, V2)
            other = await engine.run(GRAPH, "go")
            # Another process drives it: it holds the flow's lease.
            await engine.store_adapter.acquire_lease(other.flow_id, "elsewhere:1:x", 60.0)
            busy = await engine.migrate(other.flow_id, V2)
            record = await engine.store_adapter.get_flow(other.flow_id)
            from uuid import UUID

            unknown = await engine.migrate(UUID(int=7), V2)
            return ended, busy, unknown, record

    ended, busy, unknown, record = asyncio.run(go())
    assert (ended.outcome, ended.error) == ("refused", "FlowStateError")
    assert ended.reason == (
        f"flow {ended.flow_id} is completed; only a paused (waiting for input or on a timer) "
        "or failed flow can be migrated"
    )
    assert (busy.outcome, busy.error) == ("refused", "FlowBusyError")
    assert "is being run by elsewhere:1:x" in busy.reason
    assert busy.reason.endswith("migrating a flow needs it")
    assert record.graph == GRAPH
    assert (unknown.error, unknown.reason.split(" (")[0]) == (
        "FlowNotFoundError",
        "no flow 00000000-0000-0000-0000-000000000007 in the store",
    )


def test_a_join_that_could_never_fire_is_refused(make_store: Any) -> None:
    async def go() -> tuple[MigrationReport, MigrationReport, Any]:
        async with Engine(make_store(), registry=registry()) as engine:
            paused = await engine.run(JOINED, "go")
            stuck = await engine.migrate(paused.flow_id, JOINED_STUCK)
            dropped = await engine.migrate(
                paused.flow_id,
                build_graph(
                    {"Start": "Start1", "W": "ask", "End": "End1"},
                    [("Start", "W"), ("W", "End")],
                    name="nojoin",
                ),
            )
            done = await engine.resume(paused.flow_id, "x")
            return stuck, dropped, done

    stuck, dropped, done = asyncio.run(go())
    fid = stuck.flow_id
    assert stuck.reason == (
        f"join node 'J' of flow {fid} would wait forever in the new graph 'joined-stuck': "
        "no pending node reaches its input 'B'"
    )
    assert dropped.reason == (
        f"node 'J' of flow {fid} (a join with inputs delivered) has no node in the new graph "
        "'nojoin'; name one with --map J=NEW"
    )
    assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "J(A(go)\nhello x)")


def test_mapping_errors_name_the_node() -> None:
    async def go() -> tuple[str, MigrationReport, MigrationReport]:
        async with Engine(InMemoryStore(), registry=registry()) as engine:
            paused = await engine.run(GRAPH, "go")
            with pytest.raises(ValueError) as bad_target:
                await engine.migrate(paused.flow_id, V3, {"Ask": "Nope"})
            bad_source = await engine.migrate(paused.flow_id, V3, {"Asks": "Question"})
            merged = await engine.migrate(paused.flow_id, V2, {"A": "B"})
            return str(bad_target.value), bad_source, merged

    bad_target, bad_source, merged = asyncio.run(go())
    assert bad_target == "mapping Ask=Nope: the new graph 'v3' has no node named 'Nope'"
    assert bad_source.reason == (
        f"mapping Asks=Question: flow {bad_source.flow_id}'s graph 'contract' has no node "
        "named 'Asks'"
    )
    assert merged.reason == (
        f"nodes 'A' and 'B' of flow {merged.flow_id} would both become node 'B' of the new graph"
    )


def test_a_failed_flow_moves_and_its_retry_runs_the_new_graph(make_store: Any) -> None:
    def boom(ctx: Any) -> Any:
        raise RuntimeError("broken step")

    broken = build_graph(
        {"Start": "Start1", "A": "step", "Bad": "boom", "End": "End1"},
        [("Start", "A"), ("A", "Bad"), ("Bad", "End")],
        name="broken",
    )
    fixed = build_graph(
        {"Start": "Start1", "A": "step", "Good": "step", "End": "End1"},
        [("Start", "A"), ("A", "Good"), ("Good", "End")],
        name="fixed",
    )

    async def go() -> tuple[Any, MigrationReport, MigrationReport, Any, list[Any]]:
        reg = registry()
        reg.register("boom", boom)
        async with Engine(make_store(), registry=reg) as engine:
            failed = await engine.run(broken, "in")
            refused = await engine.migrate(failed.flow_id, fixed)
            moved = await engine.migrate(failed.flow_id, fixed, {"Bad": "Good"})
            done = await engine.retry(failed.flow_id)
            return failed, refused, moved, done, await engine.history(failed.flow_id)

    failed, refused, moved, done, history = asyncio.run(go())
    assert failed.status is FlowStatus.FAILED
    assert refused.reason == (
        f"node 'Bad' of flow {failed.flow_id} (failed; a retry replays it) has no node in the "
        "new graph 'fixed'; name one with --map Bad=NEW"
    )
    assert moved.outcome == "migrated"
    assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "Good(A(in))")
    assert [(c.node_name, c.outcome) for c in history] == [
        ("Start", "finished"),
        ("A", "finished"),
        ("Good", "failed"),
        ("Good", "finished"),
        ("End", "finished"),
    ]


def _nap(then: tuple[str, str], sleeper: str = "nap") -> GraphSpec:
    """Start -> A -> a 1 h sleep -> ``then`` (type, name) -> End, built with fresh
    (uuid4) node ids: migration aligns them by name."""
    builder = GraphBuilder("Nap").start().node("up", "A").sleep(sleeper, "1h")
    return builder.node(*then).end().build()


def test_a_flow_sleeping_on_a_timer_moves_and_wakes_on_the_new_graph(make_store: Any) -> None:
    clock = TestClock(skip=False)
    reg = SimpleNodeRegistry(
        {
            "up": lambda ctx: NodeResult(output_text=ctx.input_text.upper() + "!"),
            "shout": lambda ctx: NodeResult(output_text=f"C says {ctx.input_text}"),
        }
    )

    async def go() -> tuple[Any, MigrationReport, MigrationReport, list[Any], Any, list[Any]]:
        async with Engine(make_store(), registry=reg, clock=clock) as engine:
            engine.running.clock_kept = True  # the flow parks on its timer
            parked = await engine.run(_nap(("up", "B")), "hi")
            refused = await engine.migrate(parked.flow_id, _nap(("shout", "C"), "doze"))
            moved = await engine.migrate(parked.flow_id, _nap(("shout", "C")))
            clock.advance("1h")
            woken = await engine.wake_due()
            done = await engine.result(parked.flow_id)
            return parked, refused, moved, woken, done, await engine.history(parked.flow_id)

    parked, refused, moved, woken, done, history = asyncio.run(go())
    fid = parked.flow_id
    assert (parked.status, parked.wakes_at) == (FlowStatus.PAUSED, TestClock().now() + 3600)
    assert refused.reason == (
        f"node 'nap' of flow {fid} (sleeping on a timer) has no node in the new graph 'Nap'; "
        "name one with --map nap=NEW"
    )
    assert moved.outcome == "migrated"
    assert woken == [fid]
    assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "C says HI!")
    assert [(c.node_name, c.outcome) for c in history][1:] == [
        ("A", "finished"),
        ("nap", "sleeping"),
        ("nap", "finished"),
        ("C", "finished"),
        ("End", "finished"),
    ]


def test_an_await_first_join_that_fired_needs_no_more_inputs(make_store: Any) -> None:
    nodes: dict[str, Any] = {
        "Start": "Start1",
        "A": "step",
        "W": "ask",
        "J": {"type": "step", "traverse_in": "AwaitFirst"},
        "End": "End1",
    }
    edges = [("Start", "A"), ("Start", "W"), ("A", "J"), ("W", "J"), ("J", "End")]
    first = build_graph(nodes, edges, name="first")
    # J gains an input from B, which nothing pending reaches: it fired already.
    wider = build_graph(
        {**nodes, "B": "step"}, [*edges[:2], ("Start", "B"), *edges[2:], ("B", "J")], name="wider"
    )

    async def go() -> tuple[Any, MigrationReport, Any]:
        async with Engine(make_store(), registry=registry()) as engine:
            paused = await engine.run(first, "go")
            report = await engine.migrate(paused.flow_id, wider)
            done = await engine.resume(paused.flow_id, "x")
            return paused, report, done

    paused, report, done = asyncio.run(go())
    assert [w.node_name for w in paused.waiting] == ["W"]
    assert report.outcome == "migrated", report.reason
    assert done.status is FlowStatus.COMPLETED


def test_a_worker_that_ran_a_flow_before_it_moved_runs_the_new_graph(tmp_path: Any) -> None:
    """A fleet worker keeps the state of the flows it steps, but drops it when a flow
    pauses, fails or parks (the only flows that move): after the flow moved to
    another graph, the worker's next activation reads it whole and runs the new
    graph."""
    path = tmp_path / "flows.db"
    fleet = TaskFleet(SQLiteStore(path), registry())
    client = FlowRunner(GRAPH, store=SQLiteStore(path), dispatcher=fleet)

    async def go() -> tuple[Any, Any, int | None]:
        paused = await client.arun("go")
        cached = fleet.stepper.records_read(paused.flow_id)  # None: no state kept
        async with Engine(SQLiteStore(path), registry=registry()) as other:
            report = await other.migrate(paused.flow_id, V2)
        assert report.outcome == "migrated"
        done = await client.aresume(paused.flow_id, "Bob")
        return paused, done, cached

    try:
        paused, done, cached = asyncio.run(go())
    finally:
        fleet.shutdown()
    assert paused.status is FlowStatus.PAUSED
    assert cached is None
    assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "Polish(hello Bob)")
