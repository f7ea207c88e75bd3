"""Answers racing deadlines across processes: flows wait for an answer with a
deadline; one process answers each at its deadline while another keeps the clock;
each flow takes exactly one of the two outcomes (the answer, or the deadline's
``on_timeout`` answer or ``on_timeout_edge`` edge)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from quartermaster_engine.context.node_execution import NodeStatus
from quartermaster_engine.events import (
    DeadlinePassed,
)
from quartermaster_engine.runner.engine import Engine
from quartermaster_engine.runner.errors import FlowBusyError, FlowStateError
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_engine.testing.calls import call
from quartermaster_engine.testing.timers.nodes import timer_registry
from quartermaster_graph import GraphBuilder, GraphEdge, GraphNode, GraphSpec
from quartermaster_graph.validation import check_graph


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
        async with Engine(store=store, registry=timer_registry("")) as engine:
            given = await asyncio.gather(
                *(answer(engine, f, d) for f, d in zip(ids, deadlines, strict=True))
            )
        return sum(given)

    return {"answered": asyncio.run(main())}


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
        async with Engine(store=open_store(), registry=timer_registry("")) as engine:
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
