"""Deadlines of waits for a person: a waiting node whose metadata has ``timeout``
is answered with its ``on_timeout`` once the deadline passes, or, with
``on_timeout_edge``, finishes without running again and takes only its outgoing
edges of that label (docs/time.md).

The deadline is the waiting activation's ``not_before``, written by the fenced
commit that parked it. Whoever holds the flow's lease after it passed (a clock
loop's `Engine.wake_due`, or `recover`) answers it here with a commit carrying
``answers``, exactly like `resume`: an answer and the deadline racing from two
processes each need the lease, and the store refuses the second commit (the
node no longer waits), so exactly one of the two happens. A deadline edge is
taken by a commit that consumes the waiting activation (``done``): a later
answer finds nothing waiting, an earlier one left a newer lease epoch (refused).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from quartermaster_engine.context.node_execution import NodeExecution
from quartermaster_engine.events import DeadlinePassed
from quartermaster_engine.nodes import NodeResult
from quartermaster_engine.runner import outcomes
from quartermaster_engine.runner.compiled import OUT_LATE, CEdge, CNode
from quartermaster_engine.stores.records import Activation, Commit, FlowStatus, FlowUpdate

if TYPE_CHECKING:
    from quartermaster_engine.runner.flow_run import FlowRun

#: The ``output_data`` key of the record of a node whose deadline edge was taken
#: (the deadline, a Unix time): how history tells it from an answer.
DEADLINE_PASSED = "deadline_passed"


def deadline_edge(cnode: CNode) -> CEdge | None:
    """The outgoing edge a node's ``on_timeout_edge`` names (validation makes sure
    there is one)."""
    label = cnode.node.metadata.get("on_timeout_edge")
    return next((e for e in cnode.out_edges if label and e.label == label), None)


def took_deadline_edge(cnode: CNode, rec: NodeExecution) -> CEdge | None:
    """The deadline edge ``rec`` took (a finished record of a node with one), or
    None: it was answered."""
    if cnode.out_mode != OUT_LATE or DEADLINE_PASSED not in (rec.output_data or {}):
        return None
    return deadline_edge(cnode)


def due(run: FlowRun) -> list[Activation]:
    """The run's waiting activations whose deadline has passed, by the engine's clock."""
    now = run.clock.now()
    return [
        act
        for act in run.state.waiting.values()
        if act.not_before and act.not_before <= now and "timeout" in act.cnode.node.metadata
    ]


async def fire_due(run: FlowRun) -> int:
    """Answer every waiting activation whose deadline passed with its node's
    ``on_timeout``, or take its ``on_timeout_edge`` (the caller holds the lease);
    returns how many."""
    passed = due(run)
    for act in passed:
        cnode: CNode = act.cnode
        edge = deadline_edge(cnode) if cnode.out_mode == OUT_LATE else None
        answer = "" if edge is not None else str(cnode.node.metadata.get("on_timeout") or "")
        if run.listening:
            run.emit(
                DeadlinePassed(
                    flow_id=run.flow_id,
                    node_id=act.node_id,
                    node_name=cnode.name,
                    deadline=act.not_before,
                    answer=answer,
                    edge="" if edge is None else edge.label,
                )
            )
        if edge is not None:
            await _take_edge(run, act, edge)
            continue
        answered = Activation(act.node_id, act.visit, act.attempt, act.inputs, user_input=answer)
        answered.cnode = cnode
        answered.sources = act.sources
        commit = Commit(enqueue=[answered], answers=act.key)
        if run.committer.durable:
            await run.committer.commit(commit)
        run.state.apply(commit)
    if passed and run.committer.durable:
        await run.committer.update(FlowUpdate(status=FlowStatus.RUNNING, updated_at=time.time()))
    return len(passed)


async def _take_edge(run: FlowRun, act: Activation, edge: CEdge) -> None:
    """The node finishes without running again: its input passes on along ``edge``
    only (the others are dead), by the commit that consumes its waiting activation."""
    run.state.waiting.pop(act.key, None)
    result = NodeResult(output_text=run.input_text(act), data={DEADLINE_PASSED: act.not_before})
    await outcomes.succeed(run, act, result, time.time(), edge)
