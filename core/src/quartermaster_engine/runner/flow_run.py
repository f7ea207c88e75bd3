"""`FlowRun`: one flow being driven by this process.

It composes parts of one job each: `FlowState` (what the flow has done and may do), `Router`
(what an outcome enables), `NodeInputs` (what an activation receives), `ExecutorCaller`
(running executors), `outcomes` (an outcome turned into a commit), `Committer` (writing commits
under the lease), `Emitter` (events and the event log), `RunControl` (phase and stop), the
drivers, `budget_gate` and `finish`. All runs on the flow's loop: no locks.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any
from uuid import UUID

from quartermaster_engine.events import FlowEvent, FlowStarted, NodeStarted
from quartermaster_engine.nodes import NodeResult
from quartermaster_engine.runner import budget_gate, drivers, finish, outcomes
from quartermaster_engine.runner.committer import Committer
from quartermaster_engine.runner.compiled import OUT_PICKED, CEdge, CNode, CompiledGraph
from quartermaster_engine.runner.control import Phase, RunControl
from quartermaster_engine.runner.emitter import Emitter
from quartermaster_engine.runner.errors import LeaseLostError, error_text
from quartermaster_engine.runner.executor_call import ExecutorCaller
from quartermaster_engine.runner.host import RunHost
from quartermaster_engine.runner.lease import LeaseKeeper
from quartermaster_engine.runner.node_inputs import NodeInputs
from quartermaster_engine.runner.result import FlowResult, WaitingNode
from quartermaster_engine.runner.results import cancelled_by_executor, spurious_cancel
from quartermaster_engine.runner.routing import Router
from quartermaster_engine.runner.run_view import RunView
from quartermaster_engine.runner.state import FlowState
from quartermaster_engine.stores.records import (
    Activation,
    Commit,
    FlowRecord,
    FlowSnapshot,
    FlowStatus,
)


class Outcome:
    """An executed activation before any bookkeeping: result, picked edge, start, input."""

    __slots__ = ("input_text", "picked", "result", "started")

    def __init__(
        self, result: NodeResult, picked: CEdge | None, started: float, input_text: str
    ) -> None:
        self.result = result
        self.picked = picked
        self.started = started
        self.input_text = input_text


class FlowRun:
    """The state and scheduling of one flow in this process."""

    parks = False  # pause rather than wait here for a far timer (`runner.timers`)

    def __init__(
        self,
        host: RunHost,
        compiled: CompiledGraph,
        flow_id: UUID,
        input_text: str,
        lease: LeaseKeeper,
        *,
        parent_flow_id: UUID | None = None,
        listeners: Iterable[tuple[str, Callable[[FlowEvent], Any]]] = (),
        state: FlowState | None = None,
    ) -> None:
        self.host = host
        self.cg = compiled
        self.graph = compiled.spec
        self.flow_id = flow_id
        self.input = input_text
        self.parent_flow_id = parent_flow_id
        self.lease = lease
        store = host.store_adapter
        dispatcher = host.dispatcher
        concurrent = bool(dispatcher.concurrent)
        self.max_concurrency = dispatcher.max_concurrency if concurrent else 1
        self.clock = clock = host.clock
        self.state = state or FlowState(compiled, flow_id, input_text, clock.now, host.budgets)
        self.router = Router(
            compiled, self.state, host.max_visits, in_child=parent_flow_id is not None
        )
        self.inputs = NodeInputs(compiled, self.state, host.context_manager)
        self.control = RunControl(concurrent)
        self.extra_listeners = tuple(listeners)  # (usually the shared empty tuple)
        self.emitter = Emitter(
            flow_id,
            parent_flow_id,
            [*host.listeners(), *self.extra_listeners],
            logging=store.durable,
            listener_budget=host.listener_budget,
        )
        self.control.on_halt = self._mute
        self.committer = Committer(store, host.store_name(), flow_id, compiled, self.emitter, lease)
        self.caller = ExecutorCaller(host, self.control)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.running = 0
        #: Child flows (sub-graphs) running under this flow's nodes right now.
        self.children: set[FlowRun] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.started = time.monotonic()
        self.yield_each_step = False
        #: The flow's status in the store when this run was restored from it.
        self.status_on_load: FlowStatus | None = None
        #: What executors' contexts see of this run (`context.node_run.NodeRun`).
        self.view = RunView(
            flow_id,
            self.graph,
            host=host,
            state=self.state,
            inputs=self.inputs,
            emitter=self.emitter,
            control=self.control,
            stop=self.request_stop_threadsafe,
            child=partial(host.run_child, self),
            resume_child=partial(host.resume_child, self),
        )

    # -- what executors and the runner read ---------------------------------------

    @property
    def listening(self) -> bool:
        """Whether events are built at all (someone listens, or the store logs them)."""
        return self.emitter.listening

    @property
    def cancel_requested(self) -> bool:
        return self.control.cancel_requested

    @property
    def halted(self) -> bool:
        return self.control.halted

    @property
    def waiting(self) -> dict[tuple[UUID, int], Activation]:
        return self.state.waiting

    def input_text(self, act: Activation) -> str:
        return self.inputs.input_text(act)

    def emit(self, event: FlowEvent) -> None:
        self.emitter.emit(event)

    def describe_failure(self) -> str | None:
        return finish.describe_failure(self)

    def waiting_nodes(self) -> list[WaitingNode]:
        return finish.waiting_nodes(self)

    # -- starting and restoring ---------------------------------------------------

    async def start_new(self, *announce: FlowEvent) -> None:
        """Store the new flow (holding its lease), queue its start node, log ``announce``."""
        if self.committer.durable:
            now = time.time()
            epoch = 1
            await self.host.store_adapter.create_flow(
                FlowRecord(
                    flow_id=self.flow_id,
                    graph=self.graph,
                    input=self.input,
                    status=FlowStatus.RUNNING,
                    created_at=now,
                    updated_at=now,
                    parent_flow_id=self.parent_flow_id,
                    lease_owner=self.lease.owner,
                    lease_epoch=epoch,
                    lease_expires=now + self.lease.ttl,
                ),
            )
            self.lease.adopt(epoch)
        if self.emitter.listening:
            self.emitter.emit(
                FlowStarted(flow_id=self.flow_id, input=self.input, graph_name=self.graph.name)
            )
            for event in announce:
                self.emitter.emit(event)
        await self.queue_start()

    async def queue_start(self) -> None:
        """Queue the first visit of the start node."""
        commit = Commit(enqueue=[self.router.fire_start()])
        if self.committer.durable:
            await self.committer.commit(commit)
        self.state.apply(commit)

    @classmethod
    def from_snapshot(
        cls,
        host: RunHost,
        snapshot: FlowSnapshot,
        lease: LeaseKeeper,
        *,
        listeners: Iterable[tuple[str, Callable[[FlowEvent], Any]]] = (),
        state: FlowState | None = None,
    ) -> FlowRun:
        """A run of a stored flow: its state read from ``snapshot`` (or, given a
        ``state`` read before, brought up to date by it), and `status_on_load`."""
        flow = snapshot.flow
        if state is None:
            cg = host.compiled_for(flow.graph)
            state = FlowState(cg, flow.flow_id, flow.input, host.clock.now, host.budgets)
        state.restore(snapshot)
        return cls.from_record(host, flow, lease, listeners=listeners, state=state)

    @classmethod
    def from_record(
        cls,
        host: RunHost,
        flow: FlowRecord,
        lease: LeaseKeeper,
        *,
        listeners: Iterable[tuple[str, Callable[[FlowEvent], Any]]] = (),
        state: FlowState,
    ) -> FlowRun:
        """A run of a stored flow whose ``state`` is what the store holds as of
        ``flow`` (the caller knows nothing was committed since), and `status_on_load`."""
        run = cls(
            host,
            host.compiled_for(flow.graph),
            flow.flow_id,
            flow.input,
            lease,
            parent_flow_id=flow.parent_flow_id,
            listeners=listeners,
            state=state,
        )
        run.emitter.seq = flow.event_seq
        status = flow.status
        if status is FlowStatus.PAUSED and (state.ready or state.timers):
            # An answer was committed but the process died before marking the flow
            # running again: it is a running flow to recover, not a paused one.
            status = FlowStatus.RUNNING
        run.status_on_load = status
        return run

    def restore(self, snapshot: FlowSnapshot) -> None:
        """Rebuild this run's state from what the store holds."""
        self.state.restore(snapshot)
        self.emitter.seq = snapshot.flow.event_seq

    def dispose(self) -> None:
        """Over here: its parts let go of it, so it is freed as it ends (not by the GC)."""
        self.control.on_halt = None
        self.view.detach()

    # -- driving -----------------------------------------------------------------

    def attach(self) -> None:
        """Bind the run to the running loop and keep its lease alive."""
        loop = self.loop = asyncio.get_running_loop()
        thread = threading.get_ident()
        self.emitter.loop = loop
        self.emitter.loop_thread = self.state.loop_thread = thread
        self.control.driver = asyncio.current_task()
        if self.lease.epoch is not None:
            self.lease.keep(self._lease_lost)

    async def drive_one(self, act: Activation) -> None:
        """Run one activation and commit it, as one step of a `FlowStepper`."""
        self.attach()
        try:
            await self.run_activation(act)
        except asyncio.CancelledError:
            if self.control.phase is Phase.RUNNING:
                self.lease.stop()
                raise
            _uncancel()
        except Exception as exc:
            self.control.fail_with(exc)

    async def drive(self) -> FlowResult:
        """Run until nothing can run; return the flow's result."""
        self.attach()
        control = self.control
        try:
            if control.concurrent:
                await drivers.drive_concurrent(self, self.max_concurrency)
            else:
                await drivers.drive_inline(self)
        except asyncio.CancelledError:
            if control.phase is Phase.RUNNING:
                # Cancelled from outside (the caller's task, a closed run_async):
                # blocking executors and child flows must hear of it too.
                self.lease.stop()
                control.cancel_requested = True
                self._mute()
                for child in list(self.children):
                    child.request_stop("the parent flow was cancelled")
                raise
            _uncancel()
        except Exception as exc:
            control.fail_with(exc)
        return await finish.finish(self)

    def _lease_lost(self, why: str) -> None:
        self.control.fail_with(LeaseLostError(why))

    def _mute(self) -> None:
        self.emitter.muted = True

    def halt(self, phase: Phase) -> None:
        self.control.halt(phase)

    def request_stop(self, reason: str = "") -> None:
        """Stop the flow: nothing new starts, running async executors are cancelled,
        blocking ones see ``context.cancelled``. Must run on the flow's loop."""
        if self.control.request_stop(reason):
            for child in list(self.children):
                child.request_stop("the parent flow is stopping")

    def request_stop_threadsafe(self, reason: str = "") -> None:
        """`request_stop` from any thread. The flag blocking executors poll is set at
        once: a blocking executor may be holding the loop's thread itself."""
        self.control.cancel_requested = True
        self._mute()
        if not self.control.stop_reason:
            self.control.stop_reason = reason
        loop = self.loop
        if loop is not None:
            loop.call_soon_threadsafe(self.request_stop, reason)

    # -- one activation -------------------------------------------------------------

    async def run_activation(self, act: Activation) -> None:
        """Run one activation and commit its outcome (if the flow's budgets allow it)."""
        if self.caller.gated and not await budget_gate.admit(self, act):
            return
        self.emit_started(act)
        outcome = await self.execute(act)
        if outcome is not None:
            await self.complete(act, outcome)
            if self.committer.held_slots:  # its slots, if no commit of it gave them back
                await self.committer.release_held(act.key)

    def emit_started(self, act: Activation) -> None:
        """The activation's NodeStarted event."""
        emitter = self.emitter
        if emitter.listening:
            cnode: CNode = act.cnode
            emitter.emit(
                NodeStarted._engine(
                    self.flow_id, cnode.node_id, cnode.node.type, cnode.name, act.visit, act.attempt
                )
            )

    async def execute(self, act: Activation) -> Outcome | None:
        """The node's work: call its executor and read its answer. Nothing is written;
        returns None when a stop cancelled it (its cancelled record is written)."""
        cnode: CNode = act.cnode
        started = time.time()
        input_text = self.inputs.input_text(act)
        picked: CEdge | None = None
        try:
            result = await self.caller.call(self, act, input_text)
            if result.success and not result.wait_for_user and cnode.out_mode == OUT_PICKED:
                picked = self.cg.pick(cnode, result.picked_node)
                if picked is None:
                    result = NodeResult(success=False, error=outcomes.bad_pick(self, cnode, result))
        except asyncio.CancelledError:
            if self.control.halted:
                _uncancel()
                await outcomes.cancelled(self, act, started)
                return None
            if not cancelled_by_executor():
                raise  # cancelled from outside: drive() handles it
            result = spurious_cancel(cnode)
        except Exception as exc:
            result = outcomes.from_error(exc)
        return Outcome(result, picked, started, input_text)

    async def complete(self, act: Activation, outcome: Outcome) -> None:
        """An executed activation's bookkeeping: error strategy, routing, commit, apply."""
        result = outcome.result
        if result.wait_for_user:
            await outcomes.park(self, act, result, outcome.started)
        elif result.success:
            await outcomes.succeed(self, act, result, outcome.started, outcome.picked)
        else:
            await outcomes.fail(self, act, result, outcome.started, outcome.input_text)


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        while task.cancelling():
            task.uncancel()


__all__ = ["FlowRun", "error_text"]
