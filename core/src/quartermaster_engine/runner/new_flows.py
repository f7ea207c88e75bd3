"""Starting new flows on an `Engine`: run one to its end or first pause, start one
in the background, store one for others to run, or stream its events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from quartermaster_engine.events import FlowEvent
from quartermaster_engine.runner import finish, remote_run, timers
from quartermaster_engine.runner.arguments import optional_flow_id_arg, text_arg
from quartermaster_engine.runner.compiled import CompiledGraph
from quartermaster_engine.runner.errors import FlowStateError, StoreUnavailableError
from quartermaster_engine.runner.flow_run import FlowRun
from quartermaster_engine.runner.listeners import Listener
from quartermaster_engine.runner.result import FlowResult
from quartermaster_engine.stores.base import FlowExistsError
from quartermaster_engine.types import GraphSpec

if TYPE_CHECKING:
    from quartermaster_engine.runner.engine import Engine

_END = object()


async def stored(run: FlowRun, *announce: FlowEvent) -> FlowRun:
    """``run`` with its flow stored and its start node queued. The store failing once
    the flow is stored aborts the run instead of raising: like any store failure of a
    stored flow, driving it gives a FAILED result, the flow left running for
    recover() and its lease released. (A store that fails to store the flow raises
    its own error: there is no flow to report on.)"""
    try:
        await run.start_new(*announce)
    except FlowExistsError:
        raise FlowStateError(
            f"flow {run.flow_id} already exists in the store; use resume() or recover()"
        ) from None
    except StoreUnavailableError as exc:
        run.control.fail_with(exc)
    return run


def new_run(
    engine: Engine,
    graph: GraphSpec | CompiledGraph,
    input_message: str,
    flow_id: UUID | str | None,
    listeners: Iterable[Listener],
    parent_flow_id: UUID | None,
) -> FlowRun:
    """A run of a new flow of ``graph`` on ``engine``, checked and pre-flighted but
    not started: nothing is stored yet."""
    compiled = graph if isinstance(graph, CompiledGraph) else engine.compiled_for(graph)
    text_arg(input_message, "input_message")
    checked_id = optional_flow_id_arg(flow_id)
    engine.preflight(compiled)
    fid = checked_id if checked_id is not None else uuid4()
    if engine.running.active(fid) is not None:
        raise FlowStateError(f"flow {fid} is already running in this process")
    return FlowRun(
        engine,
        compiled,
        fid,
        input_message,
        engine.lease_for(fid),
        parent_flow_id=parent_flow_id,
        listeners=listeners,
    )


async def run(
    engine: Engine,
    graph: GraphSpec,
    input_message: str,
    flow_id: UUID | str | None,
    listeners: list[Listener],
    parent_flow_id: UUID | None = None,
    announce: tuple[FlowEvent, ...] = (),
) -> FlowResult:
    """Run a new flow of ``graph`` to its end or first pause; return its result.
    ``announce``: events logged by the commit that stores it (after FlowStarted)."""
    new = await stored(
        engine.new_run(graph, input_message, flow_id, listeners, parent_flow_id=parent_flow_id),
        *announce,
    )
    if new.control.abort is not None:
        return await engine.drive(new)  # (finish() reports it FAILED)
    if parent_flow_id is not None:
        return await engine.proceed(new)  # (a child flow never parks: its parent waits)
    new.parks = timers.can_park(engine)
    return await timers.wait_out(engine, await engine.proceed(new), listeners)


async def start(
    engine: Engine,
    graph: GraphSpec,
    input_message: str,
    flow_id: UUID | str | None,
    listeners: list[Listener],
) -> UUID:
    """Start a new flow of ``graph`` and return its id once it is stored. With a
    remote dispatcher the flow is handed to its workers and nothing runs here;
    otherwise the engine drives it in a task of the running loop."""
    return await launch(
        engine, await stored(engine.new_run(graph, input_message, flow_id, listeners))
    )


async def launch(engine: Engine, new: FlowRun) -> UUID:
    """Set the stored new flow going (`start`): handed to a remote dispatcher's
    workers, or driven in a task of the running loop."""
    if engine.remote and new.control.abort is None:
        await remote_run.hand_off(engine, new)
    else:
        # Parked on a far timer only when this engine's clock loop will wake it.
        new.parks = engine.running.clock_kept and timers.can_park(engine)
        engine.running.in_background(new)
    return new.flow_id


async def submit(
    engine: Engine, graph: GraphSpec, input_message: str, flow_id: UUID | str | None
) -> UUID:
    """Store a new flow with its start node queued, run nothing, and return its
    id: another process advances it (`FlowStepper`, a distributed dispatcher)
    or recovers it. Needs a durable store. With a remote dispatcher the flow is
    handed to its workers."""
    if not engine.store_adapter.durable:
        raise FlowStateError(
            f"submit() needs a durable store; {engine.store_name()} keeps flows in this "
            "process only: use run()"
        )
    new = await stored(engine.new_run(graph, input_message, flow_id))
    if new.control.abort is not None:
        await finish.release_after_outage(new)
        raise new.control.abort
    if engine.remote:
        await remote_run.hand_off(engine, new)
    else:
        await new.lease.release()
    return new.flow_id


async def stream(
    engine: Engine, graph: GraphSpec, input_message: str, flow_id: UUID | str | None
) -> AsyncIterator[FlowEvent]:
    """Run a new flow, yielding its events as they happen. Breaking out of the
    iteration stops the flow."""
    if engine.remote:
        async for event in remote_run.run_async(engine, graph, input_message, flow_id):
            yield event
        return
    queue: asyncio.Queue[Any] = asyncio.Queue()
    new = engine.new_run(graph, input_message, flow_id, [("run_async", queue.put_nowait)])
    new.yield_each_step = True

    async def go() -> FlowResult:
        try:
            await stored(new)
        except BaseException:
            queue.put_nowait(_END)
            raise
        return await engine.drive(new, on_end=lambda: queue.put_nowait(_END))

    task = asyncio.ensure_future(go())
    try:
        while True:
            item = await queue.get()
            if item is _END:
                break
            yield item
        await task
    finally:
        if not task.done():
            new.request_stop("the run_async consumer stopped iterating")
            await asyncio.gather(task, return_exceptions=True)
