"""Child flows on a fleet, on the SQLite store: "workers" that are asyncio tasks of
another engine (`TaskFleet`, with the std pack's SubAssistant1) sharing only a SQLite file with
the client. The sub-graph node stores its child and waits in the store (the mark
survives the SQLite codec); the child's end wakes it (see docs/scale-out.md)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from qm_nodes_std import register_graph, std_executors, unregister_graph
from qm_store_sqlite import SQLiteStore
from quartermaster_engine import FlowRunner, FlowStatus, NodeResult, SimpleNodeRegistry
from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.runner import fleet_children
from quartermaster_engine.testing import build_graph, call, chain_graph
from quartermaster_engine.testing.task_fleet import TaskFleet

PARENT = build_graph(
    {
        "Start": "Start1",
        "Sub": {"type": "SubAssistant1", "metadata": {"graph": "kid"}},
        "After": "t.work",
        "End": "End1",
    },
    [("Start", "Sub"), ("Sub", "After"), ("After", "End")],
    name="parent",
)


def task_fleet(path: Path, ran: Counter[str], *, hold: bool = False) -> TaskFleet:
    """A fleet of tasks with the std pack and the test's executors."""

    def work(ctx: ExecutionContext) -> str:
        ran[ctx.current_node.name] += 1
        return f"{ctx.current_node.name}({ctx.input_text})"

    def ask(ctx: ExecutionContext) -> NodeResult:
        ran[ctx.current_node.name] += 1
        if ctx.user_input is None:
            return NodeResult(wait_for_user=True, user_prompt="Name?")
        return NodeResult(output_text=f"hello {ctx.user_input}")

    registry = SimpleNodeRegistry({**std_executors(), "t.work": work, "t.ask": ask})
    return TaskFleet(SQLiteStore(path), registry, hold=hold)


@pytest.fixture(params=[False], ids=["tasks"])
def fleet(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[TaskFleet, Counter[str], SQLiteStore]]:
    """(fleet, runs per node name, the client's store); parametrized indirectly with
    True: a fleet whose hand-overs wait for the test to deliver them (``hold``)."""
    ran: Counter[str] = Counter()
    tasks = task_fleet(tmp_path / "flows.db", ran, hold=request.param)
    client_store = SQLiteStore(tmp_path / "flows.db")
    yield tasks, ran, client_store
    unregister_graph("kid")
    call(client_store, "close")
    tasks.shutdown()


def _statuses(snap: Any) -> Counter[tuple[str, str]]:
    names = {n.id: n.name for n in snap.flow.graph.nodes}
    return Counter((names[r.node_id], r.status.value) for r in snap.records)


def test_a_child_runs_on_the_tasks_and_its_end_wakes_the_parent(fleet: Any) -> None:
    tasks, ran, store = fleet
    register_graph("kid", chain_graph(5, "t.work"))
    client = FlowRunner(PARENT, store=store, dispatcher=tasks)
    assert client.engine.fleet is tasks  # (a remote dispatcher is its client's fleet)
    # (The wake reads the parked node back from SQLite: the mark survives its codec.)
    result = asyncio.run(client.arun("x"))
    assert result.status is FlowStatus.COMPLETED
    assert result.final_output == "After(n2(n1(n0(x))))"
    assert ran == {"n0": 1, "n1": 1, "n2": 1, "After": 1}
    parent = call(store, "load_flow", result.flow_id)
    assert _statuses(parent)[("Sub", "running")] == 1
    assert _statuses(parent)[("Sub", "finished")] == 1
    finished = [r for r in parent.records if r.status.value == "finished" and r.output_data]
    child_id = UUID(finished[0].output_data["child_flow_id"])
    child = call(store, "load_flow", child_id)
    assert child.flow.parent_flow_id == result.flow_id
    assert child.flow.status is FlowStatus.COMPLETED
    assert child.flow.final_output == "n2(n1(n0(x)))"


def test_a_paused_child_pauses_the_parent_and_resume_answers_it(fleet: Any) -> None:
    tasks, ran, store = fleet
    register_graph(
        "kid",
        build_graph(
            {"Start": "Start1", "Ask": "t.ask", "End": "End1"}, [("Start", "Ask"), ("Ask", "End")]
        ),
    )
    client = FlowRunner(PARENT, store=store, dispatcher=tasks)

    async def go() -> tuple[Any, Any, Any]:
        paused = await client.arun("x")
        snap = await client.engine.store_adapter.load_flow(paused.flow_id)
        done = await client.aresume(paused.flow_id, "Ada")
        return paused, snap, done

    paused, snap, done = asyncio.run(go())
    # The child asked: the parent is paused on its node with the child's question.
    assert paused.status is FlowStatus.PAUSED
    assert [(w.node_name, w.prompt) for w in paused.waiting] == [("Sub", "Name?")]
    assert [(a.waiting, a.child_flow) for a in snap.pending] == [(True, None)]
    assert done.status is FlowStatus.COMPLETED
    assert done.final_output == "After(hello Ada)"
    assert ran == {"Ask": 2, "After": 1}


@pytest.mark.parametrize("fleet", [True], ids=["held"], indirect=True)
def test_a_node_woken_while_its_child_runs_waits_anew_without_handing_the_child_over(
    fleet: Any,
) -> None:
    """A wake of the parent while its child still runs (as a lost race or the sweep
    can give): the node runs again, finds the child running and waits anew; the
    child's work is not handed to the workers a second time (commit 2b33c37)."""
    tasks, ran, store = fleet
    kid = chain_graph(4, "t.work")  # Start -> n0 -> n1 -> End
    register_graph("kid", kid)
    client = FlowRunner(PARENT, store=store, dispatcher=tasks)
    names = {n.id: n.name for n in [*PARENT.nodes, *kid.nodes]}

    async def go() -> tuple[UUID, UUID, bool, Any]:
        fid = await client.asubmit("x")
        await tasks.deliver()  # parent Start
        await tasks.deliver()  # parent Sub: stores the child, parks, hands it over
        await tasks.deliver()  # child Start; n0 is held: the child is running
        (child_id, _), *_ = tasks.held
        woken = await fleet_children.wake_parent(tasks.engine, fid, child_id)
        await tasks.deliver(1)  # parent Sub again, before the child's n0
        await tasks.settle()
        return fid, child_id, woken, await client.aget_result(fid)

    fid, child_id, woken, result = asyncio.run(go())
    flows = {fid: "parent", child_id: "child"}
    assert woken is True
    assert [(flows[f], names[node], visit) for f, (node, visit, _) in tasks.published] == [
        ("parent", "Start", 1),
        ("parent", "Sub", 1),
        ("child", "Start", 1),
        ("child", "n0", 1),
        ("parent", "Sub", 1),  # the early wake
        ("child", "n1", 1),
        ("child", "End", 1),
        ("parent", "Sub", 1),  # the child's end
        ("parent", "After", 1),
        ("parent", "End", 1),
    ]
    assert (result.status, result.final_output) == (FlowStatus.COMPLETED, "After(n1(n0(x)))")
    assert ran == {"n0": 1, "n1": 1, "After": 1}
    parent = call(store, "load_flow", fid)
    # Parked, woken early and parked again, then woken by the child's end.
    assert _statuses(parent)[("Sub", "running")] == 2
    assert _statuses(parent)[("Sub", "finished")] == 1


def test_history_and_forks_of_a_parent_that_parked_on_its_child(fleet: Any) -> None:
    """The park's ``running`` record is a checkpoint; a fork at any checkpoint, and
    after the last record, completes: before the node's run after the wake, the node
    runs again and starts a child of the fork's own (its nodes run once more); after
    it, nothing of the child runs again."""
    tasks, ran, store = fleet
    register_graph("kid", chain_graph(3, "t.work"))
    client = FlowRunner(PARENT, store=store, dispatcher=tasks)

    async def go() -> tuple[Any, list[Any], list[tuple[int, Any, Counter[str], Any]]]:
        done = await client.arun("x")
        history = await client.engine.history(done.flow_id)
        forks = []
        for at in range(len(history) + 1):  # (+1: after the last record)
            ran.clear()
            fid = await client.engine.fork(done.flow_id, at=at)
            result = await client.engine.recover(fid)
            snap = await client.engine.store_adapter.load_flow(fid)
            forks.append((at, result, Counter(ran), snap))
        return done, history, forks

    done, history, forks = asyncio.run(go())
    assert done.final_output == "After(n0(x))"
    assert [(c.node_name, c.outcome) for c in history] == [
        ("Start", "finished"),
        ("Sub", "running"),
        ("Sub", "finished"),
        ("After", "finished"),
        ("End", "finished"),
    ]
    child_again = {"n0": 1, "After": 1}
    expected_runs = [child_again, child_again, child_again, {"After": 1}, {}, {}]
    for (at, result, runs, snap), expected in zip(forks, expected_runs, strict=True):
        assert (at, result.status, result.final_output) == (
            at, FlowStatus.COMPLETED, done.final_output,
        )  # fmt: skip
        assert runs == expected, at
        subs = [r for r in snap.records if r.status.value == "finished" and r.output_data]
        if at < 3:  # the fork's own child, stored with the fork as its parent
            child_id = UUID(subs[-1].output_data["child_flow_id"])
            child = call(store, "get_flow", child_id)
            assert (child.parent_flow_id, child.status) == (result.flow_id, FlowStatus.COMPLETED)
