"""Durable sleep across a SIGKILL, shared by the durable stores' test suites.

A worker process runs ``Start -> before -> nap (Sleep1, SECONDS) -> after -> End``
and SIGKILLs itself as soon as the commit that parks ``nap`` succeeded (its
TimerSet event). Another process recovers the flow. Then: the sleep is not
restarted (one TimerSet in the log, ``nap`` recorded sleeping once and finished
once), ``before`` never runs again, and the flow wakes no earlier than the
original wake time and ends no later than a second after it (not at recover
time + the duration).

A store's worker script calls `sleep_worker_main` with its store; its test calls
`check_sigkill_during_sleep`, starting the script with `processes.WorkerCommand`::

    def test_sleep_survives_sigkill(server, tmp_path):
        worker = WorkerCommand(WORKER_SCRIPT, server.url)
        check_sigkill_during_sleep(lambda: MyStore(server.url), worker.run, tmp_path / "side")
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from quartermaster_engine.context.node_execution import NodeStatus
from quartermaster_engine.events import (
    DeadlinePassed,
    FlowEvent,
    FlowFinished,
    TimerFired,
    TimerSet,
)
from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry
from quartermaster_engine.runner.engine import Engine
from quartermaster_engine.runner.errors import FlowBusyError, FlowStateError
from quartermaster_engine.runner.flow_runner import FlowRunner
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_engine.testing.calls import call
from quartermaster_graph import GraphBuilder, GraphEdge, GraphNode, GraphSpec
from quartermaster_graph.validation import check_graph

#: The sleep the crash test parks in (the issue's figure).
SLEEP_SECONDS = 2.0

RunWorker = Callable[..., Any]


def sleep_graph(seconds: float = SLEEP_SECONDS) -> GraphSpec:
    """``Start -> before -> nap (Sleep1) -> after -> End`` (work nodes ``work``)."""
    return (
        GraphBuilder("Nap")
        .start()
        .node("work", "before")
        .sleep("nap", seconds)
        .node("work", "after")
        .end()
        .build()
    )


def sleep_worker_main(store: Any, argv: list[str]) -> dict[str, Any]:
    """The worker process: ``run|recover FLOW_ID SIDE_FILE [SECONDS]``. ``run`` dies
    (SIGKILL) once ``nap``'s TimerSet is committed; ``recover`` returns the result."""
    mode, flow_id, side = argv[:3]
    seconds = float(argv[3]) if len(argv) > 3 else SLEEP_SECONDS

    def work(ctx: Any) -> NodeResult:
        with open(side, "a") as fh:  # O_APPEND: one short write per line
            fh.write(ctx.current_node.name + "\n")
        return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")

    def die_once_parked(event: FlowEvent) -> None:
        if isinstance(event, TimerSet) and mode == "run":
            os.kill(os.getpid(), signal.SIGKILL)

    runner = FlowRunner(
        sleep_graph(seconds),
        SimpleNodeRegistry({"work": work}),
        store=store,
        on_event=die_once_parked,
    )
    fid = UUID(flow_id)
    result = runner.run("in", flow_id=fid) if mode == "run" else runner.recover(fid)
    return {"status": result.status.value, "final_output": result.final_output}


def check_sigkill_during_sleep(
    open_store: Callable[[], Any],
    run_worker: RunWorker,
    side: Path,
    seconds: float = SLEEP_SECONDS,
) -> dict[str, float]:
    """Kill a worker while its flow sleeps, recover in another, assert what must hold.
    Returns the figures measured: ``late`` (flow end minus wake time, seconds) and
    ``recovered_after`` (when recovery started, seconds after the sleep began)."""
    flow_id = uuid4()
    crashed = run_worker("run", str(flow_id), str(side), str(seconds))
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    recover_started = time.time()
    recovered = run_worker("recover", str(flow_id), str(side), str(seconds))
    assert recovered.returncode == 0, recovered.stderr
    assert recovered.stdout.strip().splitlines()[-1] == (
        '{"status": "completed", "final_output": "after(before(in))"}'
    )
    assert Counter(side.read_text().split()) == Counter({"before": 1, "after": 1})
    store = open_store()
    try:
        events = list(call(store, "read_events", flow_id))
        set_ = [e for e in events if isinstance(e, TimerSet)]
        fired = [e for e in events if isinstance(e, TimerFired)]
        ended = [e for e in events if isinstance(e, FlowFinished)]
        assert (len(set_), len(fired), len(ended)) == (1, 1, 1), [e.type for e in events]
        wake_at = set_[0].wake_at
        assert fired[0].wake_at == wake_at
        # The sleep was not restarted: it began before the crash, ``seconds`` before
        # its wake time, and the flow woke at that time, not recover time + seconds.
        assert abs((wake_at - seconds) - set_[0].ts) < 0.5
        assert wake_at <= fired[0].ts, (wake_at, fired[0].ts)
        assert ended[0].ts <= wake_at + 1.0, (wake_at, ended[0].ts)
        snap = call(store, "load_flow", flow_id)
        assert snap.flow.status is FlowStatus.COMPLETED
        nap = next(n.id for n in snap.flow.graph.nodes if n.name == "nap")
        statuses = [r.status for r in snap.records if r.node_id == nap]
        assert statuses == [NodeStatus.SLEEPING, NodeStatus.FINISHED]
        return {"late": ended[0].ts - wake_at, "recovered_after": recover_started - set_[0].ts}
    finally:
        call(store, "close")


def _side_work(side: str) -> Callable[[Any], NodeResult]:
    def work(ctx: Any) -> NodeResult:
        with open(side, "a") as fh:  # O_APPEND: one short write per line
            fh.write(f"{ctx.flow_id} {ctx.current_node.name}\n")
        return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")

    return work


def _ask(ctx: Any) -> NodeResult:
    if ctx.user_input is None:
        return NodeResult(wait_for_user=True, user_prompt="ok?")
    return NodeResult(output_text=f"answer: {ctx.user_input}")


def ask_graph(timeout: float, *, edge: bool = False) -> GraphSpec:
    """``Start -> Ask (waits, deadline ``timeout`` s, on_timeout "no reply") -> End``;
    with ``edge``, Ask's deadline takes an edge instead (``on_timeout_edge``):
    ``Ask -> End`` when answered, ``Ask -[late]-> Late -> End`` when it passed."""
    if not edge:
        meta: dict[str, Any] = {"timeout": timeout, "on_timeout": "no reply"}
        return GraphBuilder("Ask").start().node("ask", "Ask", metadata=meta).end().build()
    meta = {"timeout": timeout, "on_timeout_edge": "late"}
    spec = (
        GraphBuilder("Ask")
        .start()
        .node("ask", "Ask", metadata=meta)
        .node("late", "Late")
        .end()
        .build(validate=False)
    )
    ask, late, end = (_named(spec, n) for n in ("Ask", "Late", "End"))
    edges = [
        e.model_copy(update={"label": "late"}) if e.target_id == late.id else e for e in spec.edges
    ]
    edges.append(GraphEdge(source_id=ask.id, target_id=end.id))
    graph = GraphSpec(
        name=spec.name,
        agent_id=spec.agent_id,
        start_node_id=spec.start_node_id,
        nodes=list(spec.nodes),
        edges=edges,
    )
    check_graph(graph)
    return graph


def _named(spec: GraphSpec, name: str) -> GraphNode:
    node = spec.get_node_by_name(name)
    assert node is not None, name
    return node


def _late(ctx: Any) -> NodeResult:
    return NodeResult(output_text=f"late: {ctx.input_text}")


def _registry(side: str) -> SimpleNodeRegistry:
    return SimpleNodeRegistry({"work": _side_work(side), "ask": _ask, "late": _late})


def answer_worker_main(store: Any, argv: list[str]) -> dict[str, Any]:
    """An answering process: ``answer IDS_FILE DEADLINES_FILE``: answers each flow
    ``yes`` at its deadline (racing the clock); returns how many answers it gave."""
    _, ids_file, deadlines_file = argv[:3]
    ids = [UUID(line) for line in Path(ids_file).read_text().split()]
    deadlines = [float(line) for line in Path(deadlines_file).read_text().split()]

    slots = asyncio.Semaphore(16)  # a store's connection pool is bounded

    async def answer(engine: Engine, flow_id: UUID, deadline: float) -> int:
        await asyncio.sleep(max(0.0, deadline - time.time()))
        async with slots:
            return await answer_now(engine, flow_id)

    async def answer_now(engine: Engine, flow_id: UUID) -> int:
        while True:
            try:
                await engine.resume(flow_id, "yes")
                return 1
            except FlowBusyError:
                await asyncio.sleep(0.002)  # the clock holds it: it may answer first
            except FlowStateError:
                return 0  # no longer waiting: the deadline answered it

    async def main() -> int:
        async with Engine(store=store, registry=_registry("")) as engine:
            given = await asyncio.gather(
                *(answer(engine, f, d) for f, d in zip(ids, deadlines, strict=True))
            )
        return sum(given)

    return {"answered": asyncio.run(main())}


def clock_worker_main(store: Any, argv: list[str]) -> dict[str, Any]:
    """A clock process: ``clock SIDE_FILE SECONDS``: wake due timers (`Engine.wake_due`)
    until no flow is paused or running, or SECONDS pass; returns how many it woke."""
    _, side, limit = argv[:3]
    deadline = time.time() + float(limit)

    async def main() -> int:
        woke = 0
        async with Engine(store=store, registry=_registry(side)) as engine:
            while time.time() < deadline:
                woke += len(await engine.wake_due())
                paused = await engine.flows.list(status=FlowStatus.PAUSED)
                running = await engine.flows.list(status=FlowStatus.RUNNING)
                if not paused and not running:
                    break
                await asyncio.sleep(0.02)
        return woke

    return {"woke": asyncio.run(main())}


def check_clocks_wake_each_timer_once(
    open_store: Callable[[], Any],
    start_clock: Callable[..., Any],
    side: Path,
    flows: int = 50,
    seconds: float = SLEEP_SECONDS,
) -> dict[str, Any]:
    """Park ``flows`` flows on a ``seconds`` sleep, then let two clock processes
    (``start_clock(*args)`` returns a started `subprocess.Popen` running
    `clock_worker_main`) race to wake them: each flow is woken exactly once."""

    async def park_all() -> list[UUID]:
        registry = SimpleNodeRegistry({"work": _side_work(str(side))})
        async with Engine(store=open_store(), registry=registry) as engine:
            # Flows started here park on their timer: the clock processes wake them.
            engine.running.clock_kept = True
            ids = [await engine.start(sleep_graph(seconds), "in") for _ in range(flows)]
            while engine.active_flows:  # noqa: ASYNC110 (no event says all have parked)
                await asyncio.sleep(0.01)
            paused = await engine.flows.list(status=FlowStatus.PAUSED)
            assert sorted(r.flow_id for r in paused) == sorted(ids)
            return ids

    ids = asyncio.run(park_all())
    clocks = [start_clock("clock", str(side), str(seconds + 20)) for _ in range(2)]
    outs = [proc.communicate(timeout=60) for proc in clocks]
    for proc, (_, err) in zip(clocks, outs, strict=True):
        assert proc.returncode == 0, err
    woke = [json.loads(out.strip().splitlines()[-1])["woke"] for out, _ in outs]
    lines = Counter(side.read_text().splitlines())
    assert lines == Counter({f"{f} {name}": 1 for f in ids for name in ("before", "after")})
    store = open_store()
    try:
        for flow_id in ids:
            events = list(call(store, "read_events", flow_id))
            kinds = Counter(e.type for e in events)
            assert (kinds["TimerSet"], kinds["TimerFired"], kinds["FlowFinished"]) == (1, 1, 1)
            snap = call(store, "load_flow", flow_id)
            assert snap.flow.status is FlowStatus.COMPLETED
            assert snap.flow.final_output == "after(before(in))"
    finally:
        call(store, "close")
    return {"woke": woke}


def check_answer_and_deadline_race(
    open_store: Callable[[], Any],
    start_worker: Callable[..., Any],
    tmp: Path,
    flows: int = 200,
    timeout: float = 1.5,
    *,
    edge: bool = False,
) -> dict[str, int]:
    """``flows`` flows wait for an answer with a ``timeout`` s deadline; one process
    answers each at its deadline while another keeps the clock (`start_worker(*args)`
    returns a started `subprocess.Popen` running `answer_worker_main` or
    `clock_worker_main`). Each flow takes exactly one of the two outcomes (``edge``:
    the deadline takes an edge to node Late instead of answering, `ask_graph`)."""

    async def pause_all() -> tuple[list[UUID], list[float]]:
        graph = ask_graph(timeout, edge=edge)
        async with Engine(store=open_store(), registry=_registry("")) as engine:
            results = [await engine.run(graph, "in") for _ in range(flows)]
        assert {r.status for r in results} == {FlowStatus.PAUSED}
        return [r.flow_id for r in results], [float(r.wakes_at or 0.0) for r in results]

    ids, deadlines = asyncio.run(pause_all())
    (tmp / "ids").write_text("\n".join(map(str, ids)))
    (tmp / "deadlines").write_text("\n".join(map(repr, deadlines)))
    procs = [
        start_worker("answer", str(tmp / "ids"), str(tmp / "deadlines")),
        start_worker("clock", str(tmp / "side"), str(timeout + 60)),
    ]
    outs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
    answered = json.loads(outs[0][0].strip().splitlines()[-1])["answered"]
    store = open_store()
    by_answer = by_deadline = 0
    try:
        for flow_id in ids:
            snap = call(store, "load_flow", flow_id)
            assert snap.flow.status is FlowStatus.COMPLETED, flow_id
            events = list(call(store, "read_events", flow_id))
            kinds = Counter(e.type for e in events)
            resumed = sum(getattr(e, "reason", "") == "resume" for e in events)
            ask = next(n.id for n in snap.flow.graph.nodes if n.name == "Ask")
            finished = [
                r for r in snap.records if r.node_id == ask and r.status is NodeStatus.FINISHED
            ]
            assert len(finished) == 1, flow_id
            late_node = snap.flow.graph.get_node_by_name("Late")
            late = [r for r in snap.records if late_node and r.node_id == late_node.id]
            if snap.flow.final_output == "answer: yes":
                assert (kinds["DeadlinePassed"], resumed, late) == (0, 1, []), flow_id
                by_answer += 1
            else:
                expected = "late: in" if edge else "answer: no reply"
                assert snap.flow.final_output == expected, snap.flow.final_output
                assert (kinds["DeadlinePassed"], resumed) == (1, 0), flow_id
                passed = next(e for e in events if isinstance(e, DeadlinePassed))
                assert (passed.answer, passed.edge) == (("", "late") if edge else ("no reply", ""))
                assert len(late) == (1 if edge else 0), flow_id
                by_deadline += 1
    finally:
        call(store, "close")
    assert by_answer == answered
    assert by_answer + by_deadline == flows
    return {"by_answer": by_answer, "by_deadline": by_deadline}


#: The retry test's clocks: the first process at T0, the recovering one a minute on.
RETRY_T0 = 1893456000.0
RETRY_DELAY = 600.0


def retry_graph() -> GraphSpec:
    """``Start -> flaky (Retry, 2 retries, retry_delay 600 s) -> End``."""
    return (
        GraphBuilder("Flaky")
        .start()
        .node("flaky", "flaky", error_handling="Retry", max_retries=2, retry_delay=RETRY_DELAY)
        .end()
        .build()
    )


def retry_worker_main(store: Any, argv: list[str]) -> dict[str, Any]:
    """A retrying flow on a `TestClock`: ``retry-run|retry-recover FLOW_ID SIDE_FILE``.
    ``retry-run`` (clock at `RETRY_T0`, standing still) dies (SIGKILL) once the
    failed first attempt and its retry timer are committed (NodeRetrying);
    ``retry-recover`` (clock a minute later, skipping) recovers the flow."""
    from quartermaster_engine.testing.clock import TestClock

    mode, flow_id, side = argv[:3]
    run = mode == "retry-run"
    clock = TestClock(RETRY_T0 if run else RETRY_T0 + 60, skip=not run)

    def flaky(ctx: Any) -> NodeResult:
        with open(side, "a") as fh:
            fh.write(f"attempt {ctx.attempt} at {clock.now() - RETRY_T0:.0f}\n")
        if ctx.attempt == 1:
            return NodeResult(success=False, error="not yet")
        return NodeResult(output_text="done")

    def die_once_retrying(event: FlowEvent) -> None:
        if run and event.type == "NodeRetrying":
            os.kill(os.getpid(), signal.SIGKILL)

    runner = FlowRunner(
        retry_graph(),
        SimpleNodeRegistry({"flaky": flaky}),
        store=store,
        clock=clock,
        on_event=die_once_retrying,
    )
    fid = UUID(flow_id)
    result = runner.run("in", flow_id=fid) if run else runner.recover(fid)
    return {"status": result.status.value, "final_output": result.final_output}


def check_retry_delay_survives_sigkill(run_worker: RunWorker, side: Path) -> None:
    """A 10-minute retry delay, with test clocks: the process is killed during the
    delay, another (its clock a minute later) recovers the flow: the second attempt
    runs at the original time (T0 + 600 s), not restarted (T0 + 660) nor at once."""
    flow_id = uuid4()
    crashed = run_worker("retry-run", str(flow_id), str(side))
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    recovered = run_worker("retry-recover", str(flow_id), str(side))
    assert recovered.returncode == 0, recovered.stderr
    assert recovered.stdout.strip().splitlines()[-1] == (
        '{"status": "completed", "final_output": "done"}'
    )
    assert side.read_text().splitlines() == ["attempt 1 at 0", "attempt 2 at 600"]


__all__ = [
    "answer_worker_main",
    "ask_graph",
    "check_answer_and_deadline_race",
    "check_clocks_wake_each_timer_once",
    "check_retry_delay_survives_sigkill",
    "check_sigkill_during_sleep",
    "clock_worker_main",
    "retry_worker_main",
    "sleep_graph",
    "sleep_worker_main",
]
