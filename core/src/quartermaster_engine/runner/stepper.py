"""`FlowStepper`: advance stored flows one activation at a time, from any process.

This is the primitive a distributed dispatcher builds on: a process that holds
only the store and the configuration takes a flow's lease, reads the flow,
runs one ready activation, commits its outcome with routing computed against
the flow's current state, and lets the lease go. The stepper remembers what it
has read of each flow, so a step reads only the records committed since its
last step (by this or any other process) plus the flow's frontier (queue,
open joins, loop marks, memory): its cost does not grow with the flow's
length.

"What changed since I last read" is asked by version: the flow record's
``version`` counts the commits applied to the flow, and a stepper knows which
version its state is (the one it read, plus its own commits under the lease).
While the record still has that version (and creation time), nothing changed.
When other processes committed since, a store with the `ReadsChanges` ability
returns the frontier change each of their commits kept (the activations taken
and queued, join deliveries, loop marks, memory) and `FlowState.catch_up`
applies them: `execute` and `complete` neither read nor decode the frontier,
so their cost does not grow with the flow's width, with one worker or several
on a flow. A store without it (or whose kept changes do not reach back far
enough) is read whole (`load_flow`).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from quartermaster_engine.events import FlowEvent
from quartermaster_engine.runner import budget_gate, finish, fleet_children, queue_refs, timers
from quartermaster_engine.runner.engine import Engine
from quartermaster_engine.runner.errors import MissingExecutorError
from quartermaster_engine.runner.flow_run import FlowRun, Outcome
from quartermaster_engine.runner.flow_runner import FlowRunner
from quartermaster_engine.runner.held_slots import HeldSlots, lease_for_commit
from quartermaster_engine.runner.lease import LeaseKeeper
from quartermaster_engine.runner.listeners import Listener
from quartermaster_engine.runner.outcomes import CHILD_RUNNING
from quartermaster_engine.runner.queue_refs import ActivationRef
from quartermaster_engine.runner.result import FlowResult
from quartermaster_engine.runner.state import FlowState
from quartermaster_engine.stores.base import FlowNotFoundError
from quartermaster_engine.stores.records import FlowSnapshot, FlowStatus

#: A flow record's (version, created_at): which commit of which flow a state is at.
Seen = tuple[int, float]


@dataclass(frozen=True, slots=True)
class Work:
    """An activation executed outside the flow's lease, waiting for `FlowStepper.complete`."""

    flow_id: UUID
    ref: ActivationRef
    #: None: not run, the flow had reached a budget (`complete` fails or pauses it).
    outcome: Outcome | None
    #: Events the executor emitted (progress, TimerFired, ...): logged by the commit.
    events: tuple[FlowEvent, ...] = ()
    #: The limit slots it holds, renewed until `complete`'s commit gives them back.
    slots: HeldSlots | None = None


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one step did.

    ``ran`` is the name of the node whose activation ran (None: nothing was ready);
    ``status`` is the flow's status after the step (RUNNING while there is more
    to do); ``ready`` counts the activations ready now; ``next_at`` is when the
    earliest retry waiting on a timer is due (None if none); ``result`` is set
    once the flow has paused or ended.
    """

    flow_id: UUID
    ran: str | None
    status: FlowStatus
    ready: int
    next_at: float | None
    result: FlowResult | None = None
    #: The activations this step queued (to dispatch elsewhere), and when each may
    #: start (0: now).
    queued: tuple[tuple[ActivationRef, float], ...] = ()
    #: The step's activation had been committed already (a duplicate delivery).
    duplicate: bool = False
    #: Child flows this step stored for the workers, its node now waiting for them
    #: (`fleet_children`): the caller hands them to the workers.
    children: tuple[UUID, ...] = ()


class FlowStepper:
    """Advances stored flows of an engine's store, one activation per `step`
    (given a `FlowRunner`, its engine's).

    Keeps the state it read of up to ``cache_size`` flows, so that the next step
    of a flow reads only what changed. Safe with other steppers and drivers in
    other processes: each step holds the flow's lease while it runs.
    """

    def __init__(self, engine: Engine | FlowRunner, *, cache_size: int = 256) -> None:
        if isinstance(engine, FlowRunner):
            engine = engine.engine
        if not engine.store_adapter.durable:
            raise TypeError(
                f"a FlowStepper needs a durable store; {engine.store_name()} is not one"
            )
        self.engine = engine
        self.cache_size = cache_size
        self._states: OrderedDict[UUID, FlowState] = OrderedDict()
        #: Per cached state that is exactly what the store holds: the flow record's
        #: (version, created_at) then (set after this stepper's own commit).
        self._exact: dict[UUID, Seen] = {}

    async def step(self, flow_id: UUID) -> StepResult:
        """Run one ready activation of the flow and commit it (see the module)."""
        engine = self.engine
        lease = engine.lease_for(flow_id)
        await lease.acquire(about="it cannot be advanced now")
        try:
            run, _ = await self._load(flow_id, lease)
        except BaseException:
            await lease.release()
            raise
        status = run.status_on_load or FlowStatus.RUNNING
        state = run.state
        if status.is_terminal or (not state.ready and not state.timers):
            await lease.release()
            if status is FlowStatus.RUNNING and not state.waiting and not state.children:
                # Queue empty but not recorded as ended: the step that ran last died
                # before recording the end. Record it now.
                return await self._finish(run, None)
            return StepResult(flow_id, None, status, 0, None)
        if not state.ready:
            state.release_due_timers()
        if not state.ready:
            await lease.release()
            return StepResult(flow_id, None, status, 0, state.timers[0][0])
        act = state.ready.popleft()
        name = act.cnode.name or str(act.node_id)
        await run.drive_one(act)
        if run.control.halted or (not state.ready and not state.timers):
            return await self._finish(run, name)
        await lease.release()
        self._remember(flow_id, state)
        next_at = state.timers[0][0] if state.timers else None
        return StepResult(flow_id, name, FlowStatus.RUNNING, len(state.ready), next_at)

    async def pending(self, flow_id: UUID) -> list[tuple[ActivationRef, float]]:
        """The flow's activations that may run (not waiting for a person), with when
        each may start: what a dispatcher enqueues when it takes a flow over (on a
        store that keeps timers, without far timers while anything else can run)."""
        run, exact = await self._load(flow_id, self.engine.lease_for(flow_id))
        self._remember(flow_id, run.state, exact)
        queued = queue_refs.queued(run.state)
        if timers.can_park(self.engine):
            # Far timers stay in the store while anything else can run (`timers.hand_out`).
            out = timers.hand_out(queued, run.state, run.clock.now())
            return list(out) if out else queued
        return queued

    async def execute(
        self,
        flow_id: UUID,
        ref: ActivationRef,
        *,
        stop_poll: float | None = None,
        listeners: Iterable[Listener] = (),
    ) -> Work | None:
        """Run one pending activation's executor without taking the flow's lease, so
        other activations of the flow run at the same time elsewhere. Nothing is
        written; None if the activation is no longer pending (it was committed:
        a duplicate delivery) or the flow has ended. Hand the `Work` to `complete`.

        With ``stop_poll`` the flow's record is read every ``stop_poll`` seconds
        while the executor runs: once the flow has ended (stopped elsewhere) the
        executor is stopped as by `Engine.stop` (async ones cancelled, blocking
        ones see ``context.cancelled``; a blocking executor must run off the loop, as
        under a concurrent dispatcher). Raises `MissingExecutorError` when this
        process has no executor for the node's type (nothing ran).

        ``listeners`` hear the events of the execution besides the engine's (the
        tokens the executor streams: a worker publishes them live)."""
        engine = self.engine
        run, exact = await self._load(flow_id, engine.lease_for(flow_id), listeners)
        # Executing changes no state: a state the store holds stays so.
        self._remember(flow_id, run.state, exact)
        act = queue_refs.find(run.state, ref)
        if act is None or (run.status_on_load or FlowStatus.RUNNING).is_terminal:
            return None
        if engine.executor_for(act.cnode.type_name) is None:
            raise MissingExecutorError(engine.missing_executor_message(act.cnode))
        if run.caller.gated and await budget_gate.blocked(run, act) is not None:
            return Work(flow_id, ref, None)
        run.attach()
        watch = None if stop_poll is None else asyncio.ensure_future(_watch(run, stop_poll))
        try:
            outcome = await run.execute(act)
        finally:
            if watch is not None:
                watch.cancel()
        slots = run.committer.take_held(act.key)  # for the commit `complete` writes
        if outcome is None:  # (stopped in its executor: no slots were handed over)
            return None
        return Work(flow_id, ref, outcome, tuple(run.emitter.take_unlogged()), slots)

    async def complete(self, work: Work, *, wait: float = 30.0) -> StepResult:
        """The bookkeeping of executed work under the flow's lease (waiting up to
        ``wait`` seconds for other completions of the flow): routing against the
        flow's current state, one fenced commit. A duplicate (the activation was
        committed by another delivery) changes nothing. The work's slots are given back by
        its commit, or with calls of their own when none took them."""
        try:
            return await self._complete(work, wait)
        finally:
            if work.slots is not None:
                await work.slots.release()  # (nothing left once the commit gave them back)

    async def _complete(self, work: Work, wait: float) -> StepResult:
        flow_id = work.flow_id
        lease = self.engine.lease_for(flow_id)
        await lease_for_commit(lease, work.slots, wait, "its work cannot be committed now")
        try:
            run, seen = await self._load(flow_id, lease)
        except BaseException:
            await lease.release()
            raise
        state = run.state
        act = queue_refs.find(state, work.ref)
        status = run.status_on_load or FlowStatus.RUNNING
        if act is None or status.is_terminal:
            await lease.release()
            return StepResult(flow_id, None, status, len(state.ready), None, duplicate=True)
        queue_refs.take(state, act)
        run.attach()
        child = None if work.outcome is None else work.outcome.result.wait_for_child
        if work.outcome is not None:
            if child is None:  # (parked on a child: its run is the one after the wake)
                run.emit_started(act)
            for event in work.events:  # (heard live as they happened; logged now)
                run.emitter.number(event)
            if work.slots is not None and work.slots.keys:
                run.committer.hand_over(act.key, work.slots)
            enqueued = run.committer.collect_enqueued()
            await run.complete(act, work.outcome)
            queued = queue_refs.enqueued(enqueued)
        elif await budget_gate.admit(run, act):  # approved since: it runs after all
            state.ready.append(act)
            queued = ((work.ref, 0.0),)
        else:
            queued = ()
        name = act.cnode.name or str(act.node_id)
        children: tuple[UUID, ...] = ()
        outcome = work.outcome
        # A child that was running already: the workers have its work.
        if child is not None and outcome is not None and CHILD_RUNNING not in outcome.result.data:
            children = (child,)
        # Only far timers left: the flow parks instead of handing them to the
        # workers (no broker ETA task holds them); a clock wakes it (docs/time.md).
        parks = (
            not state.ready
            and bool(state.timers)
            and timers.can_park(self.engine)
            and timers.parks_now(run)
        )
        if parks:
            queued = ()
        elif timers.can_park(self.engine):
            queued = timers.hand_out(queued, state, run.clock.now())
        idle = state.idle
        if run.control.halted or idle or parks:
            done = await self._finish(run, name)
            return StepResult(flow_id, name, done.status, 0, None, done.result, queued)
        await lease.release()
        # Read under the lease, then only our commits: the store holds this state.
        self._remember(flow_id, state, (seen[0] + run.committer.commits, seen[1]))
        ready = len(state.ready)
        return StepResult(
            flow_id, name, FlowStatus.RUNNING, ready, None, None, queued, children=children
        )

    def records_read(self, flow_id: UUID) -> int | None:
        """How many of the flow's records this stepper has read (None: it holds no
        state of that flow)."""
        state = self._states.get(flow_id)
        return None if state is None else state.record_count

    def held_state(self, flow_id: UUID) -> FlowState | None:
        """The state this stepper holds of the flow (None: none), what its next call
        starts from (tests compare it with a whole read of the store)."""
        return self._states.get(flow_id)

    async def run_to_end(self, flow_id: UUID) -> StepResult:
        """Step until the flow pauses or ends (waiting out retry timers)."""
        while True:
            result = await self.step(flow_id)
            if result.status is not FlowStatus.RUNNING:
                return result
            if result.ran is None and result.next_at is not None:
                await self.engine.clock.sleep_until(result.next_at)

    async def _finish(self, run: FlowRun, ran: str | None) -> StepResult:
        self._states.pop(run.flow_id, None)
        self._exact.pop(run.flow_id, None)
        result = await finish.finish(run)
        engine = self.engine
        if engine.fleet is not None and (run.parent_flow_id is not None or run.state.children):
            await fleet_children.after_end(engine, run, result.status)
        return StepResult(run.flow_id, ran, result.status, 0, None, result)

    async def _load(
        self,
        flow_id: UUID,
        lease: LeaseKeeper,
        listeners: Iterable[Listener] = (),
    ) -> tuple[FlowRun, Seen]:
        """A run of the flow with its state brought up to date, and the flow record's
        (version, created_at) the state is exactly the store's at (a store reads a
        flow, or its changes, at one instant)."""
        engine = self.engine
        store = engine.store_adapter
        state = self._states.pop(flow_id, None)
        exact = self._exact.pop(flow_id, None)
        if state is not None and exact is not None:
            caught_up = await self._catch_up(flow_id, state, exact, lease, listeners)
            if caught_up is not None:
                return caught_up
        after = 0 if state is None else state.record_count
        snapshot: FlowSnapshot | None = await store.load_flow(flow_id, records_after=after)
        if snapshot is None:
            raise FlowNotFoundError(f"no flow {flow_id} in the store ({engine.store_name()})")
        if state is not None and snapshot.record_count < after:
            state = None  # the flow was deleted and made anew: read it whole
            snapshot = await store.load_flow(flow_id)
            assert snapshot is not None
        run = FlowRun.from_snapshot(engine, snapshot, lease, listeners=listeners, state=state)
        run.committer.keep_changes = store.reads_changes
        flow = snapshot.flow
        return run, (flow.version, flow.created_at)

    async def _catch_up(
        self,
        flow_id: UUID,
        state: FlowState,
        exact: Seen,
        lease: LeaseKeeper,
        listeners: Iterable[Listener],
    ) -> tuple[FlowRun, Seen] | None:
        """A run of the flow on ``state`` (the store's at ``exact``) brought up to date
        without reading the frontier: unchanged since (the flow record says), or
        caught up on the changes of the commits since (`ReadsChanges`). None: read
        the flow whole (changes not kept, the flow ended or was made anew)."""
        engine = self.engine
        store = engine.store_adapter
        if store.reads_changes:
            changes = await store.read_changes(flow_id, exact[0], records_after=state.record_count)
            record = None if changes is None else changes.flow
        else:
            changes = None
            record = await store.get_flow(flow_id)
        if record is None:
            raise FlowNotFoundError(f"no flow {flow_id} in the store ({engine.store_name()})")
        seen = (record.version, record.created_at)
        if seen != exact:
            if (
                changes is None
                or changes.commits is None
                or record.created_at != exact[1]
                or record.status.is_terminal
            ):
                return None
            state.catch_up(changes)
        run = FlowRun.from_record(engine, record, lease, listeners=listeners, state=state)
        run.committer.keep_changes = store.reads_changes
        return run, seen

    def _remember(self, flow_id: UUID, state: FlowState, exact: Seen | None = None) -> None:
        self._states[flow_id] = state
        if exact is None:
            self._exact.pop(flow_id, None)
        else:
            self._exact[flow_id] = exact
        while len(self._states) > self.cache_size:
            dropped, _ = self._states.popitem(last=False)
            self._exact.pop(dropped, None)


async def _watch(run: FlowRun, every: float) -> None:
    """Stop ``run`` once its flow has ended in the store (see `FlowStepper.execute`)."""
    store = run.host.store_adapter
    while True:
        await asyncio.sleep(every)
        record = await store.get_flow(run.flow_id)
        if record is None or record.status.is_terminal:
            run.request_stop("the flow was stopped")
            return
