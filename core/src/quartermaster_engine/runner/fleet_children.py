"""Child flows on a fleet: the child flow of a sub-graph node advanced by the
workers of a remote dispatcher, while the parent's activation waits in the store.

Inside a process whose engine has a `fleet` (a `FlowLauncher`: ``qm worker``
sets its own), ``context.run_child`` does not drive the child here:

- it stores the child flow (its deterministic id, ``parent_flow_id`` set) and
  raises `ChildFlowPending`; the node's activation is committed as waiting for
  that child (`outcomes.park_on_child`: no worker is held), and only then is the
  child handed to the workers (`FlowStepper.complete` reports it; the worker
  publishes it), so the child cannot end before its parent waits for it;
- when the child pauses or ends, the step that records it wakes the parent
  (`wake_parent`): under the parent's lease, one commit that answers the waiting
  activation (fenced as an answer: a second wake is refused) and queues the node
  again; the node runs again, finds the child stored and returns its result
  (a paused child pauses the node with the child's question);
- an answer to such a paused node goes to the child (``resume_child``), which is
  handed to the workers again while the node waits anew;
- the end of a parent (stopped, failed) stops its children; a stop of a child
  wakes its parent (its node fails: the child was stopped);
- `relaunch`: ``recover`` of a parent hands its running children to the workers
  again (and theirs), and wakes it for children that ended meanwhile (a wake lost
  with a killed worker); the workers' sweep does the latter.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING
from uuid import UUID

from quartermaster_engine.runner import stored_flows
from quartermaster_engine.runner.errors import (
    ChildFlowPending,
    FlowStateError,
    LeaseLostError,
    error_text,
)
from quartermaster_engine.runner.result import FlowResult
from quartermaster_engine.stores.base import FlowExistsError, FlowNotFoundError
from quartermaster_engine.stores.records import (
    Activation,
    Commit,
    FlowRecord,
    FlowStatus,
    FlowUpdate,
)
from quartermaster_engine.types import GraphSpec

if TYPE_CHECKING:
    from quartermaster_engine.runner.engine import Engine
    from quartermaster_engine.runner.flow_run import FlowRun
    from quartermaster_engine.runner.state import FlowState

logger = logging.getLogger("quartermaster_engine.runner")

#: Seconds a wake waits for the parent's lease (workers hold it only to commit).
WAKE_WAIT = 30.0


async def start_child(
    engine: Engine, parent: FlowRun, graph: GraphSpec, input_text: str, flow_id: UUID
) -> FlowResult:
    """Store the child flow for the workers and raise `ChildFlowPending`; a child
    stored already (the parent's activation runs again) that has paused or ended
    returns its result, one still running is waited for again."""
    run = engine.new_run(graph, input_text, flow_id, (), parent_flow_id=parent.flow_id)
    try:
        await run.start_new()
    except FlowExistsError:
        return await _stored(engine, flow_id)
    await run.lease.release()
    raise ChildFlowPending(flow_id)


async def answer_child(
    engine: Engine, flow_id: UUID, user_input: str, node_id: UUID | str | None
) -> FlowResult:
    """Give a paused child its answer and raise `ChildFlowPending` (the workers
    continue it); a child running already (answered before a crash) is waited
    for again, an ended one returns its result."""
    record = await engine.store_adapter.get_flow(flow_id)
    if record is not None and record.status is FlowStatus.PAUSED:
        run = await stored_flows.load(
            engine, flow_id, wait=WAKE_WAIT, about="its answer cannot be given now"
        )
        status = run.status_on_load or FlowStatus.PAUSED
        if status is FlowStatus.PAUSED:
            await stored_flows.answer(run, user_input, node_id)
        await run.lease.release()
        if status.is_terminal:
            return stored_flows.stored_result(run, status)
        raise ChildFlowPending(flow_id)
    return await _stored(engine, flow_id)


async def _stored(engine: Engine, flow_id: UUID) -> FlowResult:
    record = await engine.store_adapter.get_flow(flow_id)
    if record is None:
        raise FlowStateError(f"child flow {flow_id} is no longer in the store")
    if record.status is FlowStatus.RUNNING:
        raise ChildFlowPending(flow_id, running=True)
    run = await stored_flows.load(engine, flow_id, drive=False)
    return stored_flows.stored_result(run, record.status)


async def wake_parent(engine: Engine, parent_id: UUID, child_id: UUID) -> bool:
    """Queue again the parent's activation that waits for ``child_id`` (paused or
    ended) and hand it to the workers; False if none waits for it (woken already,
    or the parent ended)."""
    fleet = engine.fleet
    if fleet is None:
        return False
    try:
        run = await stored_flows.load(
            engine, parent_id, wait=WAKE_WAIT, about="its child flow cannot wake it now"
        )
    except FlowNotFoundError:
        return False
    try:
        status = run.status_on_load or FlowStatus.RUNNING
        waiting = [a for a in run.state.children.values() if a.child_flow == child_id]
        if not waiting or status.is_terminal:
            return False
        act = waiting[0]
        woken = Activation(act.node_id, act.visit, act.attempt, act.inputs)
        try:
            await run.committer.commit(Commit(enqueue=[woken], answers=act.key))
        except LeaseLostError:
            return False  # (a refused answer: another process woke it first)
        if status is not FlowStatus.RUNNING:
            update = FlowUpdate(status=FlowStatus.RUNNING, updated_at=time.time())
            await run.committer.update(update)
    finally:
        await run.lease.release()
    await fleet.start(engine, parent_id)
    return True


async def after_end(engine: Engine, run: FlowRun, status: FlowStatus) -> None:
    """A flow of the fleet paused or ended (its end is recorded): an ended one stops
    its children; its parent is woken."""
    if status.is_terminal:
        await stop_children(engine, run.state)
    if run.parent_flow_id is not None and status is not FlowStatus.RUNNING:
        await _wake_logged(engine, run.parent_flow_id, run.flow_id)


async def children_of(engine: Engine, flow_id: UUID) -> list[UUID]:
    """The child flows a stored flow's activations wait for (read before it ends:
    an ended flow's store keeps no queue)."""
    run = await stored_flows.load(engine, flow_id, drive=False)
    return _children(run.state)


async def after_stop(
    engine: Engine, flow_id: UUID, parent_id: UUID | None, children: list[UUID]
) -> None:
    """A stored flow was marked stopped: its ``children`` are stopped, its parent woken."""
    await _stop_all(engine, children)
    if parent_id is not None:
        await _wake_logged(engine, parent_id, flow_id)


async def stop_children(engine: Engine, state: FlowState) -> None:
    await _stop_all(engine, _children(state))


async def _stop_all(engine: Engine, children: list[UUID]) -> None:
    for child in children:
        with contextlib.suppress(FlowNotFoundError):
            await stored_flows.stop(engine, child, [])


def _children(state: FlowState) -> list[UUID]:
    return [c for c in (a.child_flow for a in state.children.values()) if c is not None]


async def relaunch(engine: Engine, flow_id: UUID, *, running: bool) -> int:
    """Wake ``flow_id`` for each child that paused or ended without waking it; with
    ``running``, hand its running children (and theirs) to the workers again.
    Returns how many children were woken or handed over."""
    fleet = engine.fleet
    if fleet is None:
        return 0
    run = await stored_flows.load(engine, flow_id, drive=False)
    count = 0
    for act in list(run.state.children.values()):
        child = act.child_flow
        assert child is not None
        record = await engine.store_adapter.get_flow(child)
        if record is None or record.status is not FlowStatus.RUNNING:
            count += await _wake_logged(engine, flow_id, child)
        elif running:
            await fleet.start(engine, child)
            count += 1 + await relaunch(engine, child, running=True)
    return count


async def ancestors(engine: Engine, flow_id: UUID) -> list[UUID]:
    """The ancestors of a stored flow, nearest first (its parent, the parent's
    parent, ...; not the flow itself)."""
    found: list[UUID] = []
    record = await engine.store_adapter.get_flow(flow_id)
    while record is not None and record.parent_flow_id is not None:
        if record.parent_flow_id in found:
            break  # (a cycle would be a corrupt store; never loop on it)
        found.append(record.parent_flow_id)
        record = await engine.store_adapter.get_flow(record.parent_flow_id)
    return found


async def stop_if_orphaned(engine: Engine, record: FlowRecord) -> bool:
    """Stop a running child flow whose parent has ended or is gone (the parent was
    stopped while its node was storing this child: nothing waits for it); True if
    stopped. For the workers' sweep."""
    if record.parent_flow_id is None:
        return False
    parent = await engine.store_adapter.get_flow(record.parent_flow_id)
    if parent is not None and not parent.status.is_terminal:
        return False
    with contextlib.suppress(FlowNotFoundError):
        await stored_flows.stop(engine, record.flow_id, [])
    return True


async def _wake_logged(engine: Engine, parent_id: UUID, child_id: UUID) -> bool:
    """`wake_parent`; a failure is logged (recover or the sweep wakes it later)."""
    try:
        return await wake_parent(engine, parent_id, child_id)
    except Exception as exc:
        logger.warning(
            "flow %s: its parent %s could not be woken now (%s); recover or the workers' "
            "sweep wakes it",
            child_id,
            parent_id,
            error_text(exc),
        )
        return False
