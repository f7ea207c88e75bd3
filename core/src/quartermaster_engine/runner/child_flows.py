"""Child flows: a sub-graph run by a node (SubAssistant1) as a flow of its own,
sharing its parent's engine (store, executors) and listeners."""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from quartermaster_engine.runner import fleet_children, stored_flows
from quartermaster_engine.runner.errors import FlowStateError
from quartermaster_engine.runner.flow_run import FlowRun
from quartermaster_engine.runner.result import FlowResult
from quartermaster_engine.stores.base import FlowExistsError
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_engine.types import GraphSpec

if TYPE_CHECKING:
    from quartermaster_engine.runner.engine import Engine


async def run_child(
    engine: Engine, parent: FlowRun, graph: GraphSpec, input_text: str, flow_id: UUID
) -> FlowResult:
    """Run ``graph`` as a child flow of ``parent``: same engine and listeners; its
    events carry the parent's flow id; stopping the parent stops it.

    If the child already exists (the parent is being recovered after a crash), it
    is continued where it stopped: recovered if it was running, else its stored
    result (paused or ended) is returned.

    With a fleet (`Engine.fleet`), the child runs on the workers instead and this
    raises `ChildFlowPending` (see `fleet_children`).
    """
    if engine.fleet is not None:
        return await fleet_children.start_child(engine, parent, graph, input_text, flow_id)
    run = engine.new_run(
        graph, input_text, flow_id, parent.extra_listeners, parent_flow_id=parent.flow_id
    )
    run.yield_each_step = parent.yield_each_step
    try:
        await run.start_new()
    except FlowExistsError:
        existing = await stored_flows.load(engine, flow_id, parent.extra_listeners)
        status = existing.status_on_load or FlowStatus.RUNNING
        if status is not FlowStatus.RUNNING:
            await existing.lease.release()
            return stored_flows.stored_result(existing, status)
        existing.yield_each_step = parent.yield_each_step
        return await _drive_child(engine, parent, existing)
    return await _drive_child(engine, parent, run)


async def resume_child(
    engine: Engine, parent: FlowRun, flow_id: UUID, user_input: str, node_id: UUID | str | None
) -> FlowResult:
    """Give a paused child flow its answer and continue it (with a fleet: see
    `fleet_children.answer_child`)."""
    if engine.fleet is not None:
        return await fleet_children.answer_child(engine, flow_id, user_input, node_id)
    run = await stored_flows.load(engine, flow_id, parent.extra_listeners)
    status = run.status_on_load or FlowStatus.PAUSED
    if status.is_terminal:
        await run.lease.release()
        raise FlowStateError(f"child flow {flow_id} is {status.value}; nothing to resume")
    await stored_flows.answer(run, user_input, node_id)
    return await _drive_child(engine, parent, run)


async def _drive_child(engine: Engine, parent: FlowRun, run: FlowRun) -> FlowResult:
    parent.children.add(run)
    if parent.cancel_requested:
        run.request_stop("the parent flow is stopping")
    try:
        return await engine.drive(run)
    finally:
        parent.children.discard(run)
