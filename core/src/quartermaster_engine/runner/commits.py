"""Writing an activation's outcome: its record, and its commit applied to the flow's
state with the events staged for it (shared by `outcomes` and `maps`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus
from quartermaster_engine.events import FlowEvent, NodeDead
from quartermaster_engine.runner import usage_counts
from quartermaster_engine.runner.compiled import CNode
from quartermaster_engine.stores.records import Activation, Commit

if TYPE_CHECKING:
    from quartermaster_engine.runner.flow_run import FlowRun


def record(
    act: Activation,
    status: NodeStatus,
    started: float,
    result: str | None,
    data: dict[str, Any],
    error: str | None,
) -> NodeExecution:
    return NodeExecution._engine(
        act.node_id,
        status,
        act.visit,
        act.attempt,
        result,
        error,
        data,
        started,
        time.time(),
        act.sources,
        act.user_input,
    )


async def commit_and_apply(
    run: FlowRun,
    cnode: CNode,
    rec: NodeExecution,
    commit: Commit,
    event: FlowEvent | None,
    failure: str | None = None,
) -> None:
    """Settle loops, report dead nodes, commit, apply to the state, then deliver
    the staged event."""
    router = run.router
    if cnode.loops or run.state.touched:  # (otherwise settling has nothing to do)
        router.settle(cnode, commit)
    committer = run.committer
    emitter = run.emitter
    if router.dead:
        dead = router.take_dead()
        if emitter.listening:
            for node in dead:
                emitter.emit(
                    NodeDead(flow_id=run.flow_id, node_id=node.node_id, node_name=node.name)
                )
    if run.caller.counts_usage:  # an engine whose limits count tokens, or key budgets
        await _committed_counted(run, cnode, rec, commit, event, failure)
        return
    sync = committer.sync and not committer.held_slots  # (slots: given back by `commit`)
    if sync and not emitter.holding:
        # The commit cannot suspend, so nothing is emitted between it and the
        # delivery: number the event into the commit, deliver it right after.
        if event is not None:
            emitter.number(event)
        committer.commit_now(commit)  # no coroutine on the in-memory hot path
        run.state.apply(commit, cnode, rec, failure=None if failure is None else (cnode, failure))
        if event is not None:
            emitter.deliver(event)
        return
    handle = None if event is None else emitter.stage(event)
    if sync:
        committer.commit_now(commit)
    else:
        await committed(run, commit, handle)
    run.state.apply(commit, cnode, rec, failure=None if failure is None else (cnode, failure))
    if handle is not None:
        emitter.release(handle)


async def _committed_counted(
    run: FlowRun,
    cnode: CNode,
    rec: NodeExecution,
    commit: Commit,
    event: FlowEvent | None,
    failure: str | None,
) -> None:
    """Commit with the record's usage for its keys (`usage_counts`), apply, deliver."""
    local = usage_counts.stage(run, cnode, rec, commit)
    handle = None if event is None else run.emitter.stage(event)
    await committed(run, commit, handle)
    if local is not None:
        usage_counts.add_local(run, local)
    run.state.apply(commit, cnode, rec, failure=None if failure is None else (cnode, failure))
    if handle is not None:
        run.emitter.release(handle)


async def committed(run: FlowRun, commit: Commit, handle: list[Any] | None) -> None:
    """Commit; a staged event whose commit failed is never delivered."""
    try:
        await run.committer.commit(commit)
    except BaseException:
        if handle is not None:
            run.emitter.drop(handle)
        raise
