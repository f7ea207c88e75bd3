"""Continuing stored flows: resume a paused one, recover an interrupted one, stop,
read results and events. Part of `FlowRunner` (a mixin): every method here takes
the flow's lease before it changes the flow (see `lease`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, cast
from uuid import UUID

from quartermaster_engine._sync import run_sync
from quartermaster_engine.events import FlowEvent, FlowResumed, FlowStopped
from quartermaster_engine.runner.arguments import flow_id_arg, node_arg, text_arg
from quartermaster_engine.runner.errors import FlowStateError
from quartermaster_engine.runner.event_log import DEFAULT_POLL_SECONDS, read_log
from quartermaster_engine.runner.flow_run import FlowRun
from quartermaster_engine.runner.result import Captures, FlowResult, NodeResults
from quartermaster_engine.stores.base import FlowNotFoundError
from quartermaster_engine.stores.records import FlowSnapshot, FlowStatus, FlowUpdate

if TYPE_CHECKING:
    from quartermaster_engine.runner.compiled import CompiledGraph
    from quartermaster_engine.runner.flow_runner import EventHandler
    from quartermaster_engine.runner.host import RunHost
    from quartermaster_engine.runner.lease import LeaseKeeper
    from quartermaster_engine.stores.adapter import StoreAdapter
    from quartermaster_engine.types import GraphSpec

logger = logging.getLogger("quartermaster_engine.runner")

#: Seconds `resume` and `recover` wait for a flow's lease under a remote dispatcher.
REMOTE_LEASE_WAIT = 10.0


class StoredFlows:
    """`FlowRunner`'s operations on flows it did not start in this call."""

    if TYPE_CHECKING:  # what FlowRunner provides
        remote: bool
        _store: StoreAdapter
        _active: dict[UUID, FlowRun]
        _parked: dict[UUID, FlowRun]

        def store_name(self) -> str: ...
        def listeners(self) -> list[tuple[str, EventHandler]]: ...
        def lease_for(self, flow_id: UUID) -> LeaseKeeper: ...
        def compiled_for(self, spec: GraphSpec) -> CompiledGraph: ...
        def preflight(self, compiled: CompiledGraph | None = None) -> None: ...
        async def _drive(
            self, run: FlowRun, on_end: Callable[[], None] | None = None
        ) -> FlowResult: ...
        async def _continue(self, run: FlowRun) -> FlowResult: ...

    async def _load(
        self,
        flow_id: UUID,
        listeners: Iterable[tuple[str, EventHandler]] = (),
        *,
        drive: bool = True,
        wait: float = 0.0,
        about: str = "",
    ) -> FlowRun:
        """A run of a stored flow. With ``drive`` this runner first takes the flow's
        lease (waiting up to ``wait`` seconds for a live driver to let go; else
        `FlowBusyError`), then reads the flow, so what it reads no other process
        changes while it holds the lease."""
        if flow_id in self._active:
            raise FlowStateError(f"flow {flow_id} is running in this process")
        if not self._store.durable:
            parked = self._parked.get(flow_id)
            if parked is None:
                raise FlowNotFoundError(
                    f"flow {flow_id} is not paused in this process, and the store "
                    f"({self.store_name()}) cannot continue flows across processes"
                )
            parked.control.resume()
            return parked
        lease = self.lease_for(flow_id)
        if drive:
            try:
                await lease.acquire(wait=wait, about=about)
            except FlowNotFoundError:
                raise FlowNotFoundError(
                    f"no flow {flow_id} in the store ({self.store_name()})"
                ) from None
        try:
            snapshot: FlowSnapshot | None = await self._store.call("load_flow", flow_id)
            if snapshot is None:
                raise FlowNotFoundError(f"no flow {flow_id} in the store ({self.store_name()})")
            # FlowRunner implements RunHost.
            run = FlowRun.from_snapshot(cast("RunHost", self), snapshot, lease, listeners=listeners)
        except BaseException:
            if drive:
                await lease.release()
            raise
        return run

    async def aresume(
        self, flow_id: UUID | str, user_input: str, node_id: UUID | str | None = None
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
        run = await self._load(flow_id, wait=self._lease_wait(0.0), about=about)
        status = run.status_on_load or FlowStatus.PAUSED
        if status.is_terminal:
            await run.lease.release()
            raise FlowStateError(f"flow {flow_id} is {status.value}; there is nothing to resume")
        # The same pre-flight as run(): refused here, the flow stays as it is.
        await self._preflight_held(run)
        run.started = time.monotonic()
        await self._answer(run, user_input, node_id)
        return await self._continue(run)

    def _lease_wait(self, wait: float) -> float:
        """How long to wait for a flow's lease: a remote dispatcher's workers hold it
        only while they commit, so waiting for them is always short."""
        return max(wait, REMOTE_LEASE_WAIT) if self.remote else wait

    async def _preflight_held(self, run: FlowRun) -> None:
        """`preflight` for a run holding the flow's lease: refused, it lets go."""
        try:
            self.preflight(run.cg)
        except BaseException:
            await run.lease.release()
            raise

    async def _answer(self, run: FlowRun, user_input: str, node_id: UUID | str | None) -> None:
        try:
            await run.answer(user_input, node_id)
        except BaseException:
            await run.lease.release()
            raise

    def resume(
        self, flow_id: UUID | str, user_input: str, node_id: UUID | str | None = None
    ) -> FlowResult:
        """Synchronous `aresume`."""
        return run_sync(self.aresume(flow_id, user_input, node_id))

    async def arecover(self, flow_id: UUID | str, *, wait: float = 0.0) -> FlowResult:
        """Continue a flow whose run was interrupted (a crash, a lost store connection).

        Only activations that had not committed run again. A paused flow stays
        paused and an ended flow is left as it is; both return their result.
        While another process drives the flow (holds its live lease) this raises
        `FlowBusyError`, after waiting up to ``wait`` seconds for it to let go;
        a driver that died on this host is taken over at once, one elsewhere once
        its lease runs out. A flow that will run is pre-flighted as by `run`
        first: a missing node type raises `UnknownNodeTypeError` and the flow is
        left untouched, recoverable from a process that has the executors.
        """
        flow_id = flow_id_arg(flow_id)
        run = await self._load(flow_id, wait=self._lease_wait(wait), about="it is not interrupted")
        status = run.status_on_load or FlowStatus.RUNNING
        if status is not FlowStatus.RUNNING:
            await run.lease.release()
            return stored_result(run, status)
        # The same pre-flight as run(): refused here, the flow stays recoverable.
        await self._preflight_held(run)
        run.started = time.monotonic()
        if run.listening and not self.remote:
            # (Remote: no commit of this process would log it; the workers' events follow.)
            run.emit(FlowResumed(flow_id=flow_id, reason="recover", graph_name=run.graph.name))
        if run.state.untouched:
            await run.queue_start()  # died between creating the flow and queueing Start
        return await self._continue(run)

    def recover(self, flow_id: UUID | str, *, wait: float = 0.0) -> FlowResult:
        """Synchronous `arecover`."""
        return run_sync(self.arecover(flow_id, wait=wait))

    def stop(self, flow_id: UUID | str) -> None:
        """Stop a flow: nothing new starts, running executors are cancelled (async)
        or see ``context.cancelled`` (blocking); the flow ends as stopped.

        Works from any thread. A paused flow in the store is marked stopped.
        """
        flow_id = flow_id_arg(flow_id)
        run = self._active.get(flow_id)
        if run is not None and run.loop is not None:
            if _running_loop() is run.loop:
                run.request_stop("stop() called")
            else:
                run.request_stop_threadsafe("stop() called")
            return
        run_sync(self.astop(flow_id))

    async def astop(self, flow_id: UUID | str) -> None:
        """Async `stop`."""
        flow_id = flow_id_arg(flow_id)
        run = self._active.get(flow_id)
        if run is not None:
            if run.loop is asyncio.get_running_loop():
                run.request_stop("stop() called")
            else:
                run.request_stop_threadsafe("stop() called")
            return
        parked = self._parked.pop(flow_id, None)
        if parked is not None:
            parked.emit(FlowStopped(flow_id=flow_id, reason="stop() called"))
            return
        if not self._store.durable:
            raise FlowNotFoundError(f"flow {flow_id} is not running in this process")
        record = await self._store.call("get_flow", flow_id)
        if record is None:
            raise FlowNotFoundError(f"no flow {flow_id} in the store ({self.store_name()})")
        if record.status.is_terminal:
            return
        seq = record.event_seq + 1
        event = FlowStopped(flow_id=flow_id, reason="stop() called", seq=seq, ts=time.time())
        # No lease: a stop wins over a driver elsewhere, whose next commit is refused.
        await self._store.call(
            "update_flow",
            flow_id,
            FlowUpdate(
                status=FlowStatus.STOPPED,
                updated_at=time.time(),
                event_seq=seq,
                events=[event],
                release_lease=True,
            ),
        )
        for name, listener in self.listeners():
            try:
                listener(event)
            except Exception:  # a listener never breaks a stop
                logger.exception("event listener %s failed on FlowStopped", name)

    async def events(
        self,
        flow_id: UUID,
        *,
        after: int = 0,
        follow: bool = False,
        poll: float = DEFAULT_POLL_SECONDS,
    ) -> AsyncIterator[FlowEvent]:
        """The flow's events from the store's durable log (every event but tokens),
        numbered above ``after``; from any process. With ``follow`` it keeps
        yielding new events until the flow has ended (see `event_log.read_log`)."""
        async for event in read_log(self._store, flow_id, after=after, follow=follow, poll=poll):
            yield event

    async def aget_result(self, flow_id: UUID | str) -> FlowResult:
        """The current result of a stored flow, without running anything."""
        flow_id = flow_id_arg(flow_id)
        run = await self._load(flow_id, drive=False)
        return stored_result(run, run.status_on_load or FlowStatus.PAUSED)

    def get_result(self, flow_id: UUID | str) -> FlowResult:
        """Synchronous `aget_result`."""
        return run_sync(self.aget_result(flow_id))


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
    )


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
