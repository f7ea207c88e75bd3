"""Continuing stored flows: resume a paused one, recover an interrupted one, stop
one, read its result. Functions of an `Engine`: every one that changes a flow
takes the flow's lease first (see `lease`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING
from uuid import UUID

from quartermaster_engine.events import FlowResumed, FlowStopped
from quartermaster_engine.history import message_edits, reuse
from quartermaster_engine.runner import budget_gate, deadlines, finish, fleet_children, timers
from quartermaster_engine.runner.arguments import flow_id_arg, node_arg, text_arg
from quartermaster_engine.runner.errors import FlowStateError
from quartermaster_engine.runner.event_log import read_log
from quartermaster_engine.runner.flow_run import FlowRun
from quartermaster_engine.runner.listeners import Listener
from quartermaster_engine.runner.result import Captures, FlowResult, NodeResults
from quartermaster_engine.stores.base import FlowNotFoundError
from quartermaster_engine.stores.records import (
    Activation,
    Commit,
    FlowSnapshot,
    FlowStatus,
    FlowUpdate,
)

if TYPE_CHECKING:
    from quartermaster_engine.runner.engine import Engine

logger = logging.getLogger("quartermaster_engine.runner")

#: Seconds `resume` and `recover` wait for a flow's lease under a remote dispatcher.
REMOTE_LEASE_WAIT = 10.0

__all__ = [
    "REMOTE_LEASE_WAIT",
    "load",
    "recover",
    "request_stop",
    "result",
    "resume",
    "stop",
    "stored_result",
]


async def load(
    engine: Engine,
    flow_id: UUID,
    listeners: Iterable[Listener] = (),
    *,
    drive: bool = True,
    wait: float = 0.0,
    about: str = "",
) -> FlowRun:
    """A run of a stored flow. With ``drive`` the engine first takes the flow's
    lease (waiting up to ``wait`` seconds for a live driver to let go; else
    `FlowBusyError`), then reads the flow, so what it reads no other process
    changes while it holds the lease."""
    if engine.running.active(flow_id) is not None:
        raise FlowStateError(f"flow {flow_id} is running in this process")
    store = engine.store_adapter
    if not store.durable:
        parked = engine.running.parked(flow_id)
        if parked is None:
            raise FlowNotFoundError(
                f"flow {flow_id} is not paused in this process, and the store "
                f"({engine.store_name()}) cannot continue flows across processes"
            )
        parked.control.resume()
        return parked
    lease = engine.lease_for(flow_id)
    if drive:
        try:
            await lease.acquire(wait=wait, about=about)
        except FlowNotFoundError:
            raise FlowNotFoundError(
                f"no flow {flow_id} in the store ({engine.store_name()})"
            ) from None
    try:
        snapshot: FlowSnapshot | None = await store.load_flow(flow_id)
        if snapshot is None:
            raise FlowNotFoundError(f"no flow {flow_id} in the store ({engine.store_name()})")
        run = FlowRun.from_snapshot(engine, snapshot, lease, listeners=listeners)
        if drive:
            await reuse.arm(engine, run)
            await message_edits.arm(engine, run)
    except BaseException:
        if drive:
            await lease.release()
        raise
    return run


async def resume(
    engine: Engine,
    flow_id: UUID | str,
    user_input: str,
    node_id: UUID | str | None,
    listeners: Iterable[Listener] = (),
) -> FlowResult:
    """Give ``user_input`` to a waiting node of a paused flow and continue it.

    ``node_id`` (an id or a node name) picks the node when several wait;
    by default the one that started waiting first. The flow's graph is
    pre-flighted as by `run` before the answer is recorded.
    """
    flow_id = flow_id_arg(flow_id)
    text_arg(user_input, "user_input")
    node_arg(node_id)
    about = "it cannot be resumed now"
    if node_id is not None:
        about = f"node {node_id!r} cannot be answered now"
    run = await load(engine, flow_id, listeners, wait=_lease_wait(engine, 0.0), about=about)
    status = run.status_on_load or FlowStatus.PAUSED
    if status.is_terminal:
        await run.lease.release()
        raise FlowStateError(f"flow {flow_id} is {status.value}; there is nothing to resume")
    # The same pre-flight as run(): refused here, the flow stays as it is.
    await preflight_held(engine, run)
    run.started = time.monotonic()
    await answer(run, user_input, node_id)
    run.parks = run.parent_flow_id is None and timers.can_park(engine)
    return await timers.wait_out(engine, await engine.proceed(run), listeners)


def _lease_wait(engine: Engine, wait: float) -> float:
    """How long to wait for a flow's lease: a remote dispatcher's workers hold it
    only while they commit, so waiting for them is always short."""
    return max(wait, REMOTE_LEASE_WAIT) if engine.remote else wait


async def preflight_held(engine: Engine, run: FlowRun) -> None:
    """`Engine.preflight` for a run holding the flow's lease: refused, it lets go."""
    try:
        engine.preflight(run.cg)
    except BaseException:
        await run.lease.release()
        raise


async def answer(run: FlowRun, user_input: str, node_id: UUID | str | None) -> None:
    """Give ``user_input`` to a waiting node of ``run`` and queue it to run again;
    refused, the run lets the flow's lease go."""
    try:
        waiting = find_waiting(run, node_id)
        # A new activation, not the waiting one changed in place: an in-memory store
        # holds that very object, and the commit checks it is still waiting.
        act = Activation(
            waiting.node_id, waiting.visit, waiting.attempt, waiting.inputs, user_input=user_input
        )
        act.cnode = waiting.cnode
        act.sources = waiting.sources
        if run.listening:
            run.emit(
                FlowResumed(
                    flow_id=run.flow_id,
                    reason="resume",
                    node_id=act.node_id,
                    graph_name=run.graph.name,
                )
            )
        commit = budget_gate.approval(run, waiting, user_input)
        commit = commit or Commit(enqueue=[act], answers=act.key)
        if run.committer.durable:
            await run.committer.commit(commit)
            await run.committer.update(
                FlowUpdate(status=FlowStatus.RUNNING, updated_at=time.time())
            )
        run.state.apply(commit)
    except BaseException:
        await run.lease.release()
        raise


def find_waiting(run: FlowRun, node: UUID | str | None) -> Activation:
    """The waiting activation ``node`` (an id or a name) names; by default the one
    that started waiting first."""
    waiting = run.state.waiting
    if not waiting:
        raise FlowStateError(f"flow {run.flow_id} has no node waiting for input")
    if node is None:
        return next(iter(waiting.values()))
    for act in waiting.values():
        if act.node_id == node or act.cnode.name == node or str(act.node_id) == node:
            return act
    names = ", ".join(a.cnode.describe() for a in waiting.values())
    raise FlowStateError(
        f"node {node!r} of flow {run.flow_id} is not waiting for input; waiting: {names}"
    )


async def recover(
    engine: Engine,
    flow_id: UUID | str,
    wait: float = 0.0,
    listeners: Iterable[Listener] = (),
    *,
    waker: bool = False,
) -> FlowResult:
    """Continue a flow whose run was interrupted (a crash, a lost store connection).

    Only activations that had not committed run again. A paused flow stays
    paused and an ended flow is left as it is; both return their result.
    While another process drives the flow (holds its live lease) this raises
    `FlowBusyError`, after waiting up to ``wait`` seconds for it to let go;
    a driver that died on this host is taken over at once, one elsewhere once
    its lease runs out. A flow that will run is pre-flighted as by `run`
    first: a missing node type raises `UnknownNodeTypeError` and the flow is
    left untouched, recoverable from a process that has the executors.

    A flow parked on a timer (docs/time.md) is woken: recover waits for its
    timer, then continues it (``waker``: the clock loop's call, which wakes a due
    flow and lets it park again, never waiting).
    """
    flow_id = flow_id_arg(flow_id)
    run = await load(
        engine, flow_id, listeners, wait=_lease_wait(engine, wait), about="it is not interrupted"
    )
    status = run.status_on_load or FlowStatus.RUNNING
    if status is FlowStatus.PAUSED and deadlines.due(run):
        await preflight_held(engine, run)
        await deadlines.fire_due(run)  # answered with on_timeout: it runs on
        status = FlowStatus.RUNNING
    if status is not FlowStatus.RUNNING:
        await run.lease.release()
        return stored_result(run, status)
    # The same pre-flight as run(): refused here, the flow stays recoverable.
    await preflight_held(engine, run)
    run.started = time.monotonic()
    if run.listening and not engine.remote:
        # (Remote: no commit of this process would log it; the workers' events follow.)
        run.emit(FlowResumed(flow_id=flow_id, reason="recover", graph_name=run.graph.name))
    if run.state.untouched:
        await run.queue_start()  # died between creating the flow and queueing Start
    run.parks = run.parent_flow_id is None and timers.can_park(engine)
    if engine.remote and run.committer.durable:
        # A woken (paused) flow runs on the workers now: running, not due again.
        await run.committer.update(FlowUpdate(status=FlowStatus.RUNNING, updated_at=time.time()))
    result = await engine.proceed(run)
    return result if waker else await timers.wait_out(engine, result, listeners)


def request_stop(engine: Engine, flow_id: UUID | str) -> bool:
    """Stop a flow the engine drives right now, from any thread (a stop that must
    wait for a blocking executor holding the loop's thread is not waited for);
    False if the engine drives no such flow."""
    run = engine.running.active(flow_id_arg(flow_id))
    if run is None or run.loop is None:
        return False
    if _running_loop() is run.loop:
        run.request_stop("stop() called")
    else:
        run.request_stop_threadsafe("stop() called")
    return True


async def stop(engine: Engine, flow_id: UUID | str, listeners: list[Listener]) -> None:
    """Stop a flow: one driven here is told to stop; a paused flow kept in this
    process ends as stopped; one in the store is marked stopped there (without its
    lease: a stop wins over a driver elsewhere, whose next commit is refused)."""
    flow_id = flow_id_arg(flow_id)
    run = engine.running.active(flow_id)
    if run is not None:
        if run.loop is asyncio.get_running_loop():
            run.request_stop("stop() called")
        else:
            run.request_stop_threadsafe("stop() called")
        return
    parked = engine.running.unpark(flow_id)
    if parked is not None:
        parked.emit(FlowStopped(flow_id=flow_id, reason="stop() called"))
        return
    store = engine.store_adapter
    if not store.durable:
        raise FlowNotFoundError(f"flow {flow_id} is not running in this process")
    record = await store.get_flow(flow_id)
    if record is None:
        raise FlowNotFoundError(f"no flow {flow_id} in the store ({engine.store_name()})")
    if record.status.is_terminal:
        return
    # (Children on a fleet: stopped after it; its parent: woken. Read first: an ended
    # flow's queue is gone.)
    fleet = engine.fleet is not None
    children = await fleet_children.children_of(engine, flow_id) if fleet else []
    seq = record.event_seq + 1
    event = FlowStopped(flow_id=flow_id, reason="stop() called", seq=seq, ts=time.time())
    await store.update_flow(
        flow_id,
        FlowUpdate(
            status=FlowStatus.STOPPED,
            updated_at=time.time(),
            event_seq=seq,
            events=[event],
            release_lease=True,
        ),
    )
    for name, listener in [*engine.listeners(), *listeners]:
        try:
            listener(event)
        except Exception:  # a listener never breaks a stop
            logger.exception("event listener %s failed on FlowStopped", name)
    if fleet:
        await fleet_children.after_stop(engine, flow_id, record.parent_flow_id, children)


async def result(engine: Engine, flow_id: UUID | str, *, wait: bool = False) -> FlowResult:
    """The current result of a stored flow, without running anything. With ``wait``, a
    flow the engine drives in the background (`Engine.start`) is awaited first, and
    one remote workers advance is followed until it pauses or ends."""
    flow_id = flow_id_arg(flow_id)
    if wait:
        task = engine.running.task(flow_id)
        if task is not None:
            return await asyncio.shield(task)
        if engine.remote:
            log = read_log(engine.store_adapter, flow_id, follow=True, until_paused=True)
            async for _ in log:
                pass
    run = await load(engine, flow_id, drive=False)
    return stored_result(run, run.status_on_load or FlowStatus.PAUSED)


def stored_result(run: FlowRun, status: FlowStatus) -> FlowResult:
    """The result of a flow as the store holds it (nothing runs)."""
    end = run.state.end_record
    results = NodeResults(run.state.latest)
    return FlowResult(
        flow_id=run.flow_id,
        success=status is FlowStatus.COMPLETED,
        final_output=(end.result or "") if end is not None else "",
        output_data=end.output_data if end is not None else {},
        error=run.describe_failure(),
        node_results=results,
        captures=Captures(run.graph, results),
        duration_seconds=0.0,
        status=status if status is not FlowStatus.RUNNING else FlowStatus.PAUSED,
        waiting=run.waiting_nodes(),
        wakes_at=finish.first_timer(run),
    )


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
