"""`RunningFlows`: the flows an engine drives in this process right now, the
background tasks driving them, and paused flows kept in memory (stores that
cannot continue flows across processes)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from uuid import UUID

from quartermaster_engine.runner.flow_run import FlowRun
from quartermaster_engine.runner.result import FlowResult


class RunningFlows:
    """One engine's table of running flows (see the module). ``durable``: the store
    keeps paused flows, so none are parked here."""

    def __init__(self, durable: bool) -> None:
        self.durable = durable
        self._active: dict[UUID, FlowRun] = {}
        self._tasks: dict[UUID, asyncio.Task[FlowResult]] = {}
        self._parked: dict[UUID, FlowRun] = {}
        #: A clock loop of this engine wakes parked flows (`timers.keep_clock`).
        self.clock_kept = False

    async def drive(self, run: FlowRun, on_end: Callable[[], None] | None = None) -> FlowResult:
        """Drive ``run`` until it pauses or ends, listed as active meanwhile."""
        flow_id = run.flow_id
        self._active[flow_id] = run
        try:
            result = await run.drive()
        finally:
            if self._active.get(flow_id) is run:
                del self._active[flow_id]
            if on_end is not None:
                on_end()
        if not self.durable and run.waiting and not run.halted:
            self._parked[flow_id] = run  # (resumed in this process: kept whole)
        else:
            self._parked.pop(flow_id, None)
            run.dispose()
        return result

    def in_background(self, run: FlowRun) -> asyncio.Task[FlowResult]:
        """Drive ``run`` in a task of the running loop, kept until it ends."""
        flow_id = run.flow_id
        self._active[flow_id] = run
        task = asyncio.ensure_future(self.drive(run))
        self._tasks[flow_id] = task

        def done(_: asyncio.Task[FlowResult]) -> None:
            if self._tasks.get(flow_id) is task:
                del self._tasks[flow_id]

        task.add_done_callback(done)
        return task

    def task(self, flow_id: UUID) -> asyncio.Task[FlowResult] | None:
        """The background task driving ``flow_id``, if any."""
        return self._tasks.get(flow_id)

    async def cancel_all(self) -> None:
        """Cancel every background task and wait for them to end."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def settle(self) -> None:
        """Wait until no background task is left (each flow ended or paused)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    @property
    def has_tasks(self) -> bool:
        return bool(self._tasks)

    def active(self, flow_id: UUID) -> FlowRun | None:
        """The run of ``flow_id`` driven right now, if any."""
        return self._active.get(flow_id)

    def active_ids(self) -> list[UUID]:
        return list(self._active)

    def parked(self, flow_id: UUID) -> FlowRun | None:
        """The paused run of ``flow_id`` kept in memory, if any."""
        return self._parked.get(flow_id)

    def unpark(self, flow_id: UUID) -> FlowRun | None:
        """Take the parked run of ``flow_id`` out of memory."""
        return self._parked.pop(flow_id, None)
