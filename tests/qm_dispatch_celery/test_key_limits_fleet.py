"""Concurrency limits per key on a Celery fleet: 4 ``qm worker`` processes (8 worker
threads) run 200 LLM activations against the LLM pack's fake OpenAI-compatible
server, which counts the requests it answers at once; ``[limits."llm:openai:*"]
max_in_flight = 3`` holds across the workers, and every activation completes."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery_support import Fleet

sys.path.insert(0, str(Path(__file__).parents[1] / "qm_nodes_llm"))

from fake_openai import FakeOpenAI, completion

from quartermaster_engine import FlowStatus
from quartermaster_engine.testing import build_graph, call


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    server.default = dataclasses.replace(completion("ok", model="gpt-4o-mini"), delay=0.05)
    yield server
    server.stop()


def asks(width: int) -> Any:
    """Start -> ``width`` Instruction1 nodes at once -> a join -> End."""
    nodes: dict[str, Any] = {"Start": "Start1"}
    for i in range(width):
        metadata = {"llm_model": "gpt-4o-mini", "llm_stream": False}
        nodes[f"ask{i}"] = {"type": "Instruction1", "metadata": metadata}
    nodes["J"] = {"type": "join", "traverse_in": "AwaitAll"}
    nodes["End"] = "End1"
    edges = [("Start", f"ask{i}") for i in range(width)]
    edges += [(f"ask{i}", "J") for i in range(width)]
    edges.append(("J", "End"))
    return build_graph(nodes, edges, name="asks")


def configure(fleet: Fleet, server: FakeOpenAI, limit: int | None) -> None:
    lines = [
        "[nodes.Instruction1]",
        'provider = "openai"',
        "[nodes.Instruction1.providers.openai]",
        f'base_url = "{server.base_url}"',
        'api_key = "sk-test"',
    ]
    if limit is not None:
        lines = ['[limits."llm:openai:*"]', f"max_in_flight = {limit}", *lines]
    with fleet.config.open("a") as out:
        out.write("\n" + "\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[Any]:
    from qm_store_postgres.testing import TemporaryServer

    server = TemporaryServer().start()
    yield server
    server.remove()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("store", "limit"),
    [("redis", 3), ("redis", None), ("postgres", 3)],
    ids=["limit-3", "no-limit", "postgres-limit-3"],
)
def test_four_workers_send_at_most_max_in_flight_llm_calls(
    make_fleet: Callable[..., Fleet],
    openai_server: FakeOpenAI,
    request: pytest.FixtureRequest,
    store: str,
    limit: int | None,
) -> None:
    """On the Redis store (the fleet's own), and with a PostgreSQL store (the slots
    and their line in PostgreSQL, the broker on Redis)."""
    section = None
    if store == "postgres":
        pg = request.getfixturevalue("postgres_server")
        section = {"name": "postgres", "url": pg.url, "schema_name": f"t{uuid.uuid4().hex[:12]}"}
    fleet = make_fleet(store=section)
    configure(fleet, openai_server, limit)
    fleet.start_workers(4, concurrency=2)
    with fleet.runner(asks(200)) as runner:
        result = runner.run("question")
        snap = call(runner.store, "load_flow", result.flow_id)
    assert result.status is FlowStatus.COMPLETED, result.error
    finished = [r for r in snap.records if r.status.value == "finished"]
    assert len(finished) == 203  # Start, 200 asks, J, End
    assert len(openai_server.requests) == 200
    if limit is None:
        assert openai_server.most_in_flight > 3  # 8 worker threads call at once
    else:
        assert openai_server.most_in_flight == 3


@pytest.mark.slow
def test_workers_fail_or_pause_a_flow_at_its_budget(fleet: Fleet) -> None:
    """The worker that finds the budget reached runs nothing: the flow fails with
    the budget's error, or (pause) waits for approval and resumes after it."""
    with fleet.config.open("a") as out:
        out.write("\n[budgets]\nmax_node_runs = 3\n")
    fleet.start_workers(2, concurrency=1)
    graph = build_graph(
        {"Start": "Start1", **{f"n{i}": "work" for i in range(4)}, "End": "End1"},
        [("Start", "n0"), ("n0", "n1"), ("n1", "n2"), ("n2", "n3"), ("n3", "End")],
    )
    n2 = next(n.id for n in graph.nodes if n.name == "n2")
    with fleet.runner(graph) as runner:
        failed = runner.run("in")
    assert failed.status is FlowStatus.FAILED
    assert failed.error == (
        f"BudgetExceededError: budget max_node_runs of flow {failed.flow_id} is used up: "
        f"limit 3, usage 3 (before node 'n2' ({n2}))"
    )
    assert fleet.runs() == {"n0": 1, "n1": 1}
    with fleet.config.open("a") as out:
        out.write('on_exceeded = "pause"\n')
    fleet.stop_all()
    fleet.start_workers(2, concurrency=1)
    with fleet.runner(graph) as runner:
        paused = runner.run("in")
        assert paused.status is FlowStatus.PAUSED
        assert [w.node_name for w in paused.waiting] == ["n2"]
        done = runner.resume(paused.flow_id, "approve")
    assert done.status is FlowStatus.COMPLETED, done.error
    assert done.final_output == "n3(n2(n1(n0(in))))"


def limited(names: list[str], node: dict[str, Any]) -> Any:
    """Start -> ``names`` at once (each ``node`` declaring the key ``api:x``) -> a join
    -> End."""
    nodes: dict[str, Any] = {"Start": "Start1"}
    for name in names:
        nodes[name] = {**node, "metadata": {**node["metadata"], "limit_keys": ["api:x"]}}
    nodes["J"] = {"type": "join", "traverse_in": "AwaitAll"}
    nodes["End"] = "End1"
    edges = [("Start", n) for n in names] + [(n, "J") for n in names] + [("J", "End")]
    return build_graph(nodes, edges, name="limited")


def add_limit(fleet: Fleet, *lines: str) -> None:
    with fleet.config.open("a") as out:
        out.write("\n".join(['\n[limits."api:x"]', *lines]) + "\n")


def key_row(fleet: Fleet) -> dict[str, Any]:
    """``qm limits --json``'s row of ``api:x`` (a real ``qm`` process)."""
    shown = fleet.qm("limits", "--json")
    assert shown.returncode == 0, shown.stderr
    rows: list[dict[str, Any]] = json.loads(shown.stdout)["keys"]
    return next(r for r in rows if r["key"] == "api:x")


def row_when(fleet: Fleet, in_flight: int, waiting: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        row = key_row(fleet)
        if (row["in_flight"], row["waiting"]) == (in_flight, waiting):
            return row
        assert time.monotonic() < deadline, f"timed out; last row {row}"
        time.sleep(0.1)


@pytest.mark.slow
def test_an_activation_waiting_for_a_slot_gives_its_worker_thread_back(fleet: Fleet) -> None:
    """One worker with 2 threads, ``max_in_flight = 1``: one thread runs the holder
    (20 s); the waiting activation is given back (published again with a countdown)
    rather than kept asleep on the other thread, so another flow's node runs on it
    meanwhile. (Waiting in the task, both threads would be taken until the holder ends.)
    ``qm limits`` counts the given-back activation as waiting."""
    add_limit(fleet, "max_in_flight = 1")
    fleet.start_workers(1, concurrency=2)
    holder = limited(["h1", "h2"], {"type": "hang", "metadata": {"seconds": 20}})
    other = build_graph(
        {"Start": "Start1", "w": "work", "End": "End1"},
        [("Start", "w"), ("w", "End")],
        name="other",
    )
    with fleet.runner(holder) as runner, fleet.runner(other) as second:
        fid = runner.submit("x")
        deadline = time.monotonic() + 60
        while not [p for p in fleet.lines() if p[0] == "started"]:
            assert time.monotonic() < deadline, "nothing started"
            time.sleep(0.02)
        row = row_when(fleet, in_flight=1, waiting=1)
        assert row["limit"] == 1
        done = second.run("y")
        assert done.status is FlowStatus.COMPLETED, done.error
        assert done.final_output == "w(y)"
        # The other flow ran while the holder still hung: no hang has finished yet.
        events = [(p[0], p[3]) for p in fleet.lines()]
        assert ("ran", "w") in events
        assert events.count(("started", "h1")) + events.count(("started", "h2")) == 1
        assert not [e for e in events if e[0] == "ran" and e[1] != "w"]
        record = fleet.wait_status(runner.store, fid, "completed", timeout=90)
    assert record.final_output == "hung+hung"
    assert fleet.runs() == {"w": 1, "h1": 1, "h2": 1, "J": 1}
    assert row_when(fleet, in_flight=0, waiting=0)["table"] == "api:x"
    log = fleet.logs[0].read_text()
    assert "retry: Retry in" in log  # given back to the broker with a countdown


@pytest.mark.slow
@pytest.mark.parametrize("lease", [None, 5.0], ids=["default-lease", "lease-5s"])
def test_a_killed_holders_slot_lapses_and_the_waiting_activation_runs(
    make_fleet: Callable[..., Fleet], lease: float | None
) -> None:
    """Two workers of one thread each, ``max_in_flight = 1``: the worker running the
    first activation is SIGKILLed mid-call; its slot lapses with the lease (30 s, or
    ``[engine] lease_seconds = 5``), the other activation, given back meanwhile, then
    runs on the survivor within the lease time of the kill, before the broker hands
    the killed one's message on again (visibility timeout 40 s)."""
    fleet = make_fleet(visibility_timeout=40, restore_interval=1)
    if lease is not None:
        with fleet.config.open("a") as out:
            out.write(f"\n[engine]\nlease_seconds = {lease}\n")
    add_limit(fleet, "max_in_flight = 1")
    fleet.start_workers(2, concurrency=1)
    graph = limited(["h1", "h2"], {"type": "hang", "metadata": {"seconds": 5}})
    with fleet.runner(graph) as runner:
        fid = runner.submit("x")
        deadline = time.monotonic() + 60
        while not [p for p in fleet.lines() if p[0] == "started"]:
            assert time.monotonic() < deadline, "nothing started"
            time.sleep(0.02)
        first = next(p for p in fleet.lines() if p[0] == "started")
        victim = fleet.worker_of(int(first[1]))
        fleet.kill(fleet.workers[victim])
        killed_at = time.time()
        # Until it lapses, ``qm limits`` shows the dead holder's slot, and the other
        # activation waiting (given back on the survivor).
        # (With the short lease the slot may lapse before a ``qm`` process shows it.)
        if lease is None:
            row_when(fleet, in_flight=1, waiting=1, timeout=25)
        record = fleet.wait_status(runner.store, fid, "completed", timeout=120)
    assert record.final_output == "hung+hung"
    killed, other = first[3], {"h1": "h2", "h2": "h1"}[first[3]]
    starts = [p for p in fleet.lines() if p[0] == "started"]
    # The killed node started twice (its message handed on again), the other once,
    # on the survivor, before the killed one's second start: it had the lapsed slot.
    assert [p[3] for p in starts].count(killed) == 2
    assert [p[3] for p in starts].count(other) == 1
    other_start = next(p for p in starts if p[3] == other)
    again = [p for p in starts if p[3] == killed][1]
    assert fleet.worker_of(int(other_start[1])) == 1 - victim
    assert float(other_start[6]) < float(again[6])
    # The slot lapses at most the lease time after the kill (it was renewed every
    # third of it), and the waiter's next ask comes at most a third of it later.
    ttl = 30.0 if lease is None else lease
    assert 0 < float(other_start[6]) - killed_at < ttl * 4 / 3 + 1.0
    assert fleet.runs() == {"h1": 1, "h2": 1, "J": 1}


@pytest.mark.slow
def test_starts_per_window_hold_on_the_fleet(fleet: Fleet) -> None:
    """4 workers (8 threads), ``max_requests = 5`` per second, 20 activations of the
    key at once: never more than 5 start in any 0.95 s (the 5% allows for the way
    from the store's count to the executor), and all complete."""
    add_limit(fleet, "max_requests = 5", 'per = "1s"')
    fleet.start_workers(4, concurrency=2)
    names = [f"n{i}" for i in range(20)]
    with fleet.runner(limited(names, {"type": "work", "metadata": {}})) as runner:
        result = runner.run("x")
    assert result.status is FlowStatus.COMPLETED, result.error
    runs = fleet.runs()
    assert {n: runs[n] for n in names} == dict.fromkeys(names, 1)
    started = sorted(float(p[6]) for p in fleet.lines() if p[0] == "ran" and p[3] in names)
    assert len(started) == 20
    most = max(sum(1 for t in started if s <= t < s + 0.95) for s in started)
    assert most == 5
    assert started[-1] - started[0] >= 2.85  # 20 starts need at least 3 windows
