"""Flows on real Celery workers: one flow's nodes spread over worker processes.

With `test_semantics`, these restate `DispatcherContract`'s clauses for a remote
dispatcher. The suite itself cannot run as written: its runners use the
in-memory store (refused: workers cannot see it) and executors that are
closures over the test's own lists (workers run in other processes). Its token
clause does not apply: tokens are live only, never logged, and the client
relays the durable log (see docs/scale-out.md).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from celery_support import Fleet

from quartermaster_engine import FlowStatus
from quartermaster_engine.events import FlowEvent
from quartermaster_engine.testing import build_graph, call, chain_graph


def fan(width: int, sleep: float = 0.0, branch: str = "work") -> Any:
    nodes: dict[str, Any] = {"Start": "Start1"}
    nodes.update({f"b{i}": {"type": branch, "metadata": {"sleep": sleep}} for i in range(width)})
    nodes["J"] = {"type": "join", "traverse_in": "AwaitAll"}
    nodes["End"] = "End1"
    edges = [("Start", f"b{i}") for i in range(width)]
    edges += [(f"b{i}", "J") for i in range(width)]
    edges.append(("J", "End"))
    return build_graph(nodes, edges, name="fan")


def test_fan_out_and_join_run_on_two_worker_processes(fleet: Fleet) -> None:
    fleet.start_worker(concurrency=2)
    fleet.start_worker(concurrency=2)
    events: list[FlowEvent] = []
    with fleet.runner(fan(8, sleep=0.2), on_event=events.append) as runner:
        result = runner.run("x")
        snap = call(runner.store, "load_flow", result.flow_id)
    assert result.status is FlowStatus.COMPLETED
    assert result.final_output == "+".join(sorted(f"b{i}(x)" for i in range(8)))
    assert fleet.runs() == {**{f"b{i}": 1 for i in range(8)}, "J": 1}
    # Both workers ran nodes of this one flow.
    assert {fleet.worker_of(pid) for pid in fleet.pids()} == {0, 1}
    assert Counter(r.status.value for r in snap.records) == {"finished": 11}
    # The client relayed every logged event, in order, without gaps.
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    kinds = Counter(e.type for e in events)
    assert (kinds["FlowStarted"], kinds["NodeStarted"], kinds["NodeFinished"]) == (1, 11, 11)
    assert kinds["FlowFinished"] == 1


def test_chain_outputs_flow_in_order(fleet: Fleet) -> None:
    fleet.start_worker(concurrency=1)
    with fleet.runner(chain_graph(6, "work")) as runner:
        result = runner.run("in")
    assert result.status is FlowStatus.COMPLETED
    assert result.final_output == "n3(n2(n1(n0(in))))"


@pytest.mark.parametrize("branch", ["work", "awork"], ids=["def", "async-def"])
def test_fan_out_fan_in_joins_once_with_every_branch(fleet: Fleet, branch: str) -> None:
    fleet.start_workers(2, concurrency=2)
    with fleet.runner(fan(100, branch=branch)) as runner:
        result = runner.run("x")
    assert result.final_output == "+".join(sorted(f"b{i}(x)" for i in range(100)))
    assert fleet.runs() == {**{f"b{i}": 1 for i in range(100)}, "J": 1}


def test_celery_started_the_operators_way_runs_flows(fleet: Fleet) -> None:
    fleet.start_worker(concurrency=1, celery_command=True)
    with fleet.runner(chain_graph(4, "work")) as runner:
        result = runner.run("in")
    assert result.final_output == "n1(n0(in))"
    assert fleet.runs() == {"n0": 1, "n1": 1}


def test_a_worker_of_threads_runs_a_flow_s_branches_at_once(fleet: Fleet) -> None:
    fleet.start_worker(concurrency=4, pool="threads")
    with fleet.runner(fan(20, sleep=0.05)) as runner:
        result = runner.run("x")
    assert result.final_output == "+".join(sorted(f"b{i}(x)" for i in range(20)))
    assert fleet.runs() == {**{f"b{i}": 1 for i in range(20)}, "J": 1}
    assert fleet.pids() == {fleet.workers[0].pid}
