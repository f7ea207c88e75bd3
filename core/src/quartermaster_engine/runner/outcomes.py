"""A node's outcome turned into its commit: succeed, wait, fail, retry, skip, cancel.

Each function builds the activation's record and `Commit`, routes it, commits
it, applies it to the flow's state, and reports it (events staged into the
same commit are delivered to listeners once it succeeded). Exactly one
FlowError is emitted per final failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from quartermaster_engine.context.node_execution import NodeStatus
from quartermaster_engine.control_nodes import iso
from quartermaster_engine.durations import parse_duration
from quartermaster_engine.events import (
    ChildFlowWaited,
    FlowError,
    NodeFinished,
    NodeRetrying,
    NodeSkipped,
    TimerSet,
    UserInputRequired,
)
from quartermaster_engine.nodes import NodeResult
from quartermaster_engine.runner import maps, usage_counts
from quartermaster_engine.runner.commits import commit_and_apply, committed, record
from quartermaster_engine.runner.compiled import CEdge, CNode
from quartermaster_engine.runner.control import Phase
from quartermaster_engine.runner.errors import ChildFlowPending, StoreUnavailableError, error_text
from quartermaster_engine.stores.records import CHILD_WAIT, Activation, Commit
from quartermaster_engine.types import ErrorStrategy

if TYPE_CHECKING:
    from quartermaster_engine.runner.flow_run import FlowRun


def bad_pick(run: FlowRun, cnode: CNode, result: NodeResult) -> str:
    """Why a decision's pick selects no branch, listing the valid choices."""
    choices = ", ".join(repr(c) for c in run.cg.choices(cnode)) or "(no outgoing edges)"
    if not result.picked_node:
        return f"node {cnode.describe()} picked no branch; valid choices: {choices}"
    return (
        f"node {cnode.describe()} picked {result.picked_node!r}, which matches no branch; "
        f"valid choices: {choices}"
    )


async def succeed(
    run: FlowRun,
    act: Activation,
    result: NodeResult,
    started: float,
    picked: CEdge | None,
) -> None:
    cnode: CNode = act.cnode
    if cnode.map is not None:  # a Map1 node: its map starts, or its items join
        mapped = await maps.map_result(run, act, result, started)
        if mapped is None:
            return
        result = mapped
    output = result.output_text
    rec = record(act, NodeStatus.FINISHED, started, output, result.data, None)
    run.inputs.attach_history(act, rec, bool(output))
    memory = result.data.get("memory_updates") if result.data else None
    if memory is not None and not isinstance(memory, dict):
        error = (
            f"node {cnode.describe()} returned memory_updates of type "
            f"{type(memory).__name__}; expected a dict"
        )
        await fail(run, act, NodeResult(success=False, error=error), started, run.input_text(act))
        return
    event = None
    emitter = run.emitter
    if emitter.listening:
        event = NodeFinished._engine(
            run.flow_id, cnode.node_id, output or "", result.data, cnode.name, act.visit
        )
    if cnode.item_of is not None:  # an item of a map: no edges, its map counts it
        await maps.item_ended(run, act, rec, memory or None, event)
        return
    commit = Commit((act.node_id, act.visit), rec, memory or None)
    run.router.route(cnode, rec, commit, picked)
    await commit_and_apply(run, cnode, rec, commit, event)
    if run.router.limit_error is not None:
        after_limit_check(run)


#: In the data of a node parked on a child flow that was running already (it ran
#: again before the child ended): the stepper hands no new child to the workers.
CHILD_RUNNING = "child_running"


def from_error(exc: Exception) -> NodeResult:
    """What an executor that raised ``exc`` returned: a failure, or a park on the
    child flow it started on a fleet (`ChildFlowPending`)."""
    if isinstance(exc, ChildFlowPending):
        child = exc.flow_id
        data: dict[str, Any] = {"child_flow_id": str(child)}
        if exc.running:
            data[CHILD_RUNNING] = True
        return NodeResult(wait_for_user=True, wait_for_child=child, data=data)
    return NodeResult(success=False, error=error_text(exc))


async def park(run: FlowRun, act: Activation, result: NodeResult, started: float) -> None:
    """The node waits for a person: its activation stays pending, marked waiting
    (with ``wake_at``: it sleeps, see `sleep`; with ``wait_for_child``: see
    `park_on_child`)."""
    if result.wake_at is not None:
        await sleep(run, act, result.wake_at, started)
        return
    if result.wait_for_child is not None:
        await park_on_child(run, act, result.wait_for_child, result.data, started)
        return
    cnode: CNode = act.cnode
    rec = record(act, NodeStatus.WAITING_USER, started, result.output_text, result.data, None)
    act.waiting = True
    act.prompt = result.user_prompt or ""
    act.options = list(result.user_options) if result.user_options else None
    act.user_input = None
    # The wait's deadline (docs/time.md): a timer the store keeps with it.
    timeout = cnode.node.metadata.get("timeout")
    act.not_before = 0.0 if timeout is None else run.clock.now() + deadline_seconds(timeout)
    handle = None
    if run.emitter.listening:
        event = UserInputRequired(
            flow_id=run.flow_id,
            node_id=cnode.node_id,
            prompt=act.prompt,
            options=list(act.options or ()),
            node_name=cnode.name,
            deadline=act.not_before or None,
        )
        handle = run.emitter.stage(event)
    commit = Commit(record=rec, enqueue=[act])
    await committed(run, commit, handle)
    run.state.apply(commit, cnode, rec)  # the activation waits (it is marked waiting)
    if handle is not None:
        run.emitter.release(handle)


async def park_on_child(
    run: FlowRun, act: Activation, child: UUID, data: dict[str, Any], started: float
) -> None:
    """The node waits for its child flow, which a fleet's workers advance: its
    activation stays pending, marked waiting for that child (`CHILD_WAIT`), recorded
    as running; the child's end wakes it (`fleet_children.wake_parent`). It logs
    ChildFlowWaited only (the stepper logs no NodeStarted either: the node's run is
    the one after the wake), which tells a client following the flow to follow
    the child too."""
    rec = record(act, NodeStatus.RUNNING, started, None, data, None)
    act.waiting = True
    act.prompt = ""
    act.options = None
    act.user_input = f"{CHILD_WAIT}{child}"
    act.not_before = 0.0
    handle = None
    if run.emitter.listening:
        event = ChildFlowWaited(
            flow_id=run.flow_id,
            node_id=act.cnode.node_id,
            node_name=act.cnode.name,
            visit=act.visit,
            attempt=act.attempt,
            child_flow_id=child,
        )
        handle = run.emitter.stage(event)
    commit = Commit(record=rec, enqueue=[act])
    await committed(run, commit, handle)
    run.state.apply(commit, act.cnode, rec)
    if handle is not None:
        run.emitter.release(handle)


async def sleep(run: FlowRun, act: Activation, wake_at: float, started: float) -> None:
    """The node sleeps until ``wake_at``: its activation stays pending as a timer
    (``not_before``), carrying the wake time as its ``user_input`` (``repr``) so that
    its next run, here or in a process recovering the flow, knows it woke. The
    commit that records it is fenced like any other, and logs TimerSet."""
    cnode: CNode = act.cnode
    wake_iso = iso(wake_at)
    data = {"wake_at": wake_at, "wake_iso": wake_iso}
    rec = record(act, NodeStatus.SLEEPING, started, None, data, None)
    woken = Activation(
        act.node_id,
        act.visit,
        act.attempt,
        act.inputs,
        not_before=wake_at,
        user_input=repr(wake_at),
    )
    woken.cnode = cnode
    woken.sources = act.sources
    handle = None
    if run.emitter.listening:
        event = TimerSet(
            flow_id=run.flow_id,
            node_id=cnode.node_id,
            node_name=cnode.name,
            wake_at=wake_at,
            wake_iso=wake_iso,
        )
        handle = run.emitter.stage(event)
    commit = Commit(record=rec, enqueue=[woken])
    await committed(run, commit, handle)
    run.state.apply(commit, cnode, rec)  # the activation waits on its timer
    if handle is not None:
        run.emitter.release(handle)


async def cancelled(run: FlowRun, act: Activation, started: float) -> None:
    """The flow stopped while the activation ran: a cancelled record, nothing routed."""
    rec = record(act, NodeStatus.CANCELLED, started, None, {}, "cancelled: flow stopping")
    commit = Commit(record=rec)
    if run.committer.durable and run.control.abort is None:
        try:
            await run.committer.commit(commit)
        except StoreUnavailableError as exc:
            run.control.abort = exc
        except Exception as exc:  # the lease is gone: the stop stands, nothing to write
            run.control.abort = exc
    # Shown here whether or not the store took it: the stop stands either way.
    run.state.apply(commit, act.cnode, rec)


async def fail(
    run: FlowRun, act: Activation, result: NodeResult, started: float, input_text: str
) -> None:
    """Apply the node's error strategy to a failed attempt."""
    cnode: CNode = act.cnode
    error = result.error or f"node {cnode.describe()} reported a failure"
    if cnode.error_mode is ErrorStrategy.RETRY and act.attempt <= cnode.max_retries:
        await retry(run, act, error, started, result)
        return
    strategy = cnode.error_mode
    if cnode.item_of is not None:  # an item of a map: the map's on_item_error decides
        if cnode.item_of.on_item_error != "fail":
            await maps.item_failed(run, act, result, started, error)
            return
        error, strategy = maps.item_failure(run, act, error), ErrorStrategy.STOP
    if strategy in (ErrorStrategy.SKIP, ErrorStrategy.CONTINUE):
        skipped = strategy is ErrorStrategy.SKIP
        status = NodeStatus.SKIPPED if skipped else NodeStatus.FAILED
        # The node's input passes through to its successors.
        rec = record(act, status, started, input_text, result.data, error)
        run.inputs.attach_history(act, rec, False)
        commit = Commit(done=act.key, record=rec)
        run.router.route(cnode, rec, commit, None, failed=True)
        event = None
        if skipped and run.emitter.listening:
            event = NodeSkipped(
                flow_id=run.flow_id, node_id=cnode.node_id, node_name=cnode.name, error=error
            )
        await commit_and_apply(run, cnode, rec, commit, event, None if skipped else error)
        flow_error(run, cnode, error, recoverable=True)
        after_limit_check(run)
        return
    # STOP, CUSTOM, and RETRY once attempts are used up: the flow halts.
    rec = record(act, NodeStatus.FAILED, started, None, result.data, error)
    run.halt(Phase.FAILING)  # nothing new starts while the failure is committed
    commit = Commit(done=act.key, record=rec)
    local = usage_counts.stage(run, cnode, rec, commit) if run.caller.counts_usage else None
    await run.committer.commit(commit)
    if local is not None:
        usage_counts.add_local(run, local)
    run.state.apply(commit, cnode, rec, failure=(cnode, error), leaves_loops=True)
    flow_error(run, cnode, error, recoverable=False)


async def retry(
    run: FlowRun, act: Activation, error: str, started: float, result: NodeResult
) -> None:
    """Another attempt after ``retry_delay`` doubled per attempt (never blocking others)."""
    cnode: CNode = act.cnode
    delay = cnode.retry_delay * (2 ** (act.attempt - 1))
    rec = record(act, NodeStatus.FAILED, started, None, result.data, error)
    nxt = Activation(
        act.node_id,
        act.visit,
        act.attempt + 1,
        act.inputs,
        not_before=run.clock.now() + delay if delay > 0 else 0.0,
        user_input=act.user_input,
    )
    nxt.cnode = cnode
    nxt.sources = act.sources
    handle = None
    if run.emitter.listening:
        event = NodeRetrying(
            flow_id=run.flow_id,
            node_id=cnode.node_id,
            node_name=cnode.name,
            attempt=act.attempt,
            next_attempt=nxt.attempt,
            delay=delay,
            error=error,
        )
        handle = run.emitter.stage(event)
    commit = Commit(done=act.key, record=rec, enqueue=[nxt])
    local = usage_counts.stage(run, cnode, rec, commit) if run.caller.counts_usage else None
    await committed(run, commit, handle)
    if local is not None:
        usage_counts.add_local(run, local)
    run.state.apply(commit, cnode, rec)  # the next attempt waits on a timer, or is ready
    if handle is not None:
        run.emitter.release(handle)


def deadline_seconds(timeout: Any) -> float:
    """A node's ``timeout`` metadata (a duration text or seconds) in seconds."""
    if isinstance(timeout, str):
        return parse_duration(timeout).total_seconds()
    return float(timeout)


def flow_error(run: FlowRun, cnode: CNode, error: str, *, recoverable: bool) -> None:
    """The one FlowError of a final failure."""
    if run.emitter.listening:
        run.emitter.emit(
            FlowError(
                flow_id=run.flow_id,
                node_id=cnode.node_id,
                error=error,
                recoverable=recoverable,
                node_name=cnode.name,
            )
        )


def after_limit_check(run: FlowRun) -> None:
    """A visit limit passed during routing fails the flow (once)."""
    limit = run.router.limit_error
    if limit is not None and not run.control.halted:
        cnode, error = limit
        # Nothing to store (the routing commit is in): the failure is the flow's own.
        run.state.apply(Commit(), failure=(cnode, error))
        run.halt(Phase.FAILING)
        flow_error(run, cnode, error, recoverable=False)
