"""Child flows: a sub-graph run by a node (SubAssistant1) as a flow of its own,
sharing its parent's store, executors and listeners. Part of `FlowRunner` (a mixin)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from quartermaster_engine.runner.errors import FlowStateError
from quartermaster_engine.runner.flow_run import FlowRun
from quartermaster_engine.runner.result import FlowResult
from quartermaster_engine.runner.stored_flows import StoredFlows, stored_result
from quartermaster_engine.stores.base import FlowExistsError
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_engine.types import GraphSpec

if TYPE_CHECKING:
    from collections.abc import Iterable

    from quartermaster_engine.runner.compiled import CompiledGraph
    from quartermaster_engine.runner.flow_runner import EventHandler


class ChildFlows(StoredFlows):
    """`FlowRunner`'s part that runs and resumes child flows."""

    if TYPE_CHECKING:  # what FlowRunner provides

        def _new_run(
            self,
            input_message: str,
            flow_id: UUID | None,
            parent_flow_id: UUID | None,
            listeners: Iterable[tuple[str, EventHandler]] = (),
            compiled: CompiledGraph | None = None,
        ) -> FlowRun: ...
        def _compile(self, spec: GraphSpec) -> CompiledGraph: ...

    async def run_child(
        self, parent: FlowRun, graph: GraphSpec, input_text: str, flow_id: UUID
    ) -> FlowResult:
        """Run ``graph`` as a child flow of ``parent``: same store, executors and
        listeners; its events carry the parent's flow id; stopping the parent stops it.

        If the child already exists (the parent is being recovered after a crash), it
        is continued where it stopped: recovered if it was running, else its stored
        result (paused or ended) is returned.
        """
        run = self._new_run(
            input_text, flow_id, parent.flow_id, parent.extra_listeners, self._compile(graph)
        )
        run.yield_each_step = parent.yield_each_step
        try:
            await run.start_new()
        except FlowExistsError:
            existing = await self._load(flow_id, parent.extra_listeners)
            status = existing.status_on_load or FlowStatus.RUNNING
            if status is not FlowStatus.RUNNING:
                await existing.lease.release()
                return stored_result(existing, status)
            existing.yield_each_step = parent.yield_each_step
            return await self._drive_child(parent, existing)
        return await self._drive_child(parent, run)

    async def resume_child(
        self, parent: FlowRun, flow_id: UUID, user_input: str, node_id: UUID | str | None
    ) -> FlowResult:
        """Give a paused child flow its answer and continue it."""
        run = await self._load(flow_id, parent.extra_listeners)
        status = run.status_on_load or FlowStatus.PAUSED
        if status.is_terminal:
            await run.lease.release()
            raise FlowStateError(f"child flow {flow_id} is {status.value}; nothing to resume")
        await self._answer(run, user_input, node_id)
        return await self._drive_child(parent, run)

    async def _drive_child(self, parent: FlowRun, run: FlowRun) -> FlowResult:
        parent.children.add(run)
        if parent.cancel_requested:
            run.request_stop("the parent flow is stopping")
        try:
            return await self._drive(run)
        finally:
            parent.children.discard(run)
