"""`FlowStepper`: advance stored flows one activation at a time, from any process.

This is the primitive a distributed dispatcher builds on: a process that holds
only the store and the configuration takes a flow's lease, reads the flow,
runs one ready activation, commits its outcome with routing computed against
the flow's current state, and lets the lease go. The stepper remembers what it
has read of each flow, so a step reads only the records committed since its
last step (by this or any other process) plus the flow's frontier (queue,
open joins, loop marks, memory): its cost does not grow with the flow's
length.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from quartermaster_engine.runner import finish
from quartermaster_engine.runner.flow_run import FlowRun
from quartermaster_engine.runner.lease import LeaseKeeper
from quartermaster_engine.runner.result import FlowResult
from quartermaster_engine.runner.state import FlowState
from quartermaster_engine.stores.base import FlowNotFoundError
from quartermaster_engine.stores.records import FlowSnapshot, FlowStatus

if TYPE_CHECKING:
    from quartermaster_engine.runner.flow_runner import FlowRunner


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


class FlowStepper:
    """Advances stored flows of a runner's store, one activation per `step`.

    Keeps the state it read of up to ``cache_size`` flows, so that the next step
    of a flow reads only what changed. Safe with other steppers and drivers in
    other processes: each step holds the flow's lease while it runs.
    """

    def __init__(self, runner: FlowRunner, *, cache_size: int = 256) -> None:
        if not runner.store_adapter.durable:
            raise TypeError(
                f"a FlowStepper needs a durable store; {runner.store_name()} is not one"
            )
        self.runner = runner
        self.cache_size = cache_size
        self._states: OrderedDict[UUID, FlowState] = OrderedDict()

    async def step(self, flow_id: UUID) -> StepResult:
        """Run one ready activation of the flow and commit it (see the module)."""
        runner = self.runner
        lease = runner.lease_for(flow_id)
        await lease.acquire(about="it cannot be advanced now")
        try:
            run = await self._load(flow_id, lease)
        except BaseException:
            await lease.release()
            raise
        status = run.status_on_load or FlowStatus.RUNNING
        state = run.state
        if status.is_terminal or (not state.ready and not state.timers):
            await lease.release()
            if status is FlowStatus.RUNNING and not state.waiting:
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

    def records_read(self, flow_id: UUID) -> int | None:
        """How many of the flow's records this stepper has read (None: it holds no
        state of that flow)."""
        state = self._states.get(flow_id)
        return None if state is None else state.record_count

    async def run_to_end(self, flow_id: UUID) -> StepResult:
        """Step until the flow pauses or ends (waiting out retry timers)."""
        while True:
            result = await self.step(flow_id)
            if result.status is not FlowStatus.RUNNING:
                return result
            if result.ran is None and result.next_at is not None:
                await asyncio.sleep(max(0.0, result.next_at - time.time()))

    async def _finish(self, run: FlowRun, ran: str | None) -> StepResult:
        self._states.pop(run.flow_id, None)
        result = await finish.finish(run)
        return StepResult(run.flow_id, ran, result.status, 0, None, result)

    async def _load(self, flow_id: UUID, lease: LeaseKeeper) -> FlowRun:
        runner = self.runner
        state = self._states.pop(flow_id, None)
        after = 0 if state is None else state.record_count
        snapshot: FlowSnapshot | None = await runner.store_adapter.call(
            "load_flow", flow_id, records_after=after
        )
        if snapshot is None:
            raise FlowNotFoundError(f"no flow {flow_id} in the store ({runner.store_name()})")
        if state is not None and snapshot.record_count < after:
            state = None  # the flow was deleted and made anew: read it whole
            snapshot = await runner.store_adapter.call("load_flow", flow_id)
            assert snapshot is not None
        compiled = runner.compiled_for(snapshot.flow.graph)
        if state is None:
            state = FlowState(compiled, flow_id, snapshot.flow.input)
        run = FlowRun(
            runner,
            compiled,
            flow_id,
            snapshot.flow.input,
            lease,
            parent_flow_id=snapshot.flow.parent_flow_id,
            state=state,
        )
        run.restore(snapshot)
        run.status_on_load = snapshot.flow.status
        return run

    def _remember(self, flow_id: UUID, state: FlowState) -> None:
        self._states[flow_id] = state
        while len(self._states) > self.cache_size:
            self._states.popitem(last=False)
