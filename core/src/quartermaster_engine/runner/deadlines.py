"""Deadlines of waits for a person: a waiting node whose metadata has ``timeout``
is answered with its ``on_timeout`` once the deadline passes (docs/time.md).

The deadline is the waiting activation's ``not_before``, written by the fenced
commit that parked it. Whoever holds the flow's lease after it passed (a clock
loop's `Engine.wake_due`, or `recover`) answers it here with a commit carrying
``answers``, exactly like `resume`: an answer and the deadline racing from two
processes each need the lease, and the store refuses the second commit (the
node no longer waits), so exactly one of the two happens.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from quartermaster_engine.events import DeadlinePassed
from quartermaster_engine.stores.records import Activation, Commit, FlowStatus, FlowUpdate

if TYPE_CHECKING:
    from quartermaster_engine.runner.flow_run import FlowRun


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
    ``on_timeout`` (the caller holds the lease); returns how many."""
    passed = due(run)
    for act in passed:
        answer = str(act.cnode.node.metadata.get("on_timeout") or "")
        answered = Activation(act.node_id, act.visit, act.attempt, act.inputs, user_input=answer)
        answered.cnode = act.cnode
        answered.sources = act.sources
        if run.listening:
            run.emit(
                DeadlinePassed(
                    flow_id=run.flow_id,
                    node_id=act.node_id,
                    node_name=act.cnode.name,
                    deadline=act.not_before,
                    answer=answer,
                )
            )
        commit = Commit(enqueue=[answered], answers=act.key)
        if run.committer.durable:
            await run.committer.commit(commit)
        run.state.apply(commit)
    if passed and run.committer.durable:
        await run.committer.update(FlowUpdate(status=FlowStatus.RUNNING, updated_at=time.time()))
    return len(passed)
