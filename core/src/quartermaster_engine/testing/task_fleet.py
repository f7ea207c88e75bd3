"""`TaskFleet`: a fleet whose workers are asyncio tasks of the test's own process.

Tests of what happens on a fleet (a `RemoteDispatcher` client, child flows of
sub-graph nodes, what a worker hands to the others) without a broker: each
activation handed over is a task that advances the stored flow with a
`FlowStepper` of the fleet's own `Engine` (the executors the client may lack),
sharing only the durable store with the client. Like ``qm worker``:

- `start` hands over a stored flow's pending activations (its `RemoteDispatcher`
  part, for a client; and the engine's `fleet`, for the child flows it starts);
- a task runs ``execute`` without the lease, then ``complete`` under it, then
  hands over what the step queued and starts the child flows it stored.

Every hand-over is logged in `published`, so a test counts what the workers were
given (a duplicate is harmless to the flow, but its executor may run twice). With
``hold=True`` hand-overs wait in `held` until the test delivers them (`deliver`,
`settle`): a test then chooses the order in which the workers see them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

from quartermaster_engine.nodes import NodeRegistry
from quartermaster_engine.runner.engine import Engine
from quartermaster_engine.runner.queue_refs import ActivationRef
from quartermaster_engine.runner.stepper import FlowStepper
from quartermaster_engine.testing.calls import call
from quartermaster_graph import GraphNode

T = TypeVar("T")


class TaskFleet:
    """A `RemoteDispatcher` whose workers are tasks of this process stepping flows on
    ``store`` with an engine of their own (``registry``: the workers' executors); that
    engine's fleet is this object, as ``qm worker`` sets its own. ``hold``: hand-overs
    wait for `deliver` (see the module). ``shutdown`` closes ``store``."""

    name = "tasks"
    remote = True
    concurrent = True
    max_concurrency: int | None = None

    def __init__(self, store: Any, registry: NodeRegistry, *, hold: bool = False) -> None:
        self.store = store
        self.hold = hold
        #: The workers' engine: it runs every node, the client none.
        self.engine = Engine(store, registry=registry)
        self.engine.fleet = self
        self.stepper = FlowStepper(self.engine)
        #: The activations being worked on now.
        self.tasks: set[asyncio.Task[None]] = set()
        #: Every activation handed to the workers, in order, with its flow.
        self.published: list[tuple[UUID, ActivationRef]] = []
        #: With ``hold``: the hand-overs not delivered yet, oldest first.
        self.held: list[tuple[UUID, ActivationRef]] = []

    async def start(self, engine: Engine, flow_id: UUID) -> int:
        """Hand every pending activation of the stored flow to a task of its own."""
        pending = await self.stepper.pending(flow_id)
        for ref, _ in pending:
            self._publish(flow_id, ref)
        return len(pending)

    async def deliver(self, index: int = 0) -> None:
        """With ``hold``: work the held hand-over at ``index`` to its end here (what
        it hands over is held in turn)."""
        flow_id, ref = self.held.pop(index)
        await self._activation(flow_id, ref)

    async def settle(self) -> None:
        """Wait until no task is left (tasks hand over more tasks as they end); with
        ``hold``, deliver the held hand-overs oldest first until none is left."""
        while self.held:
            await self.deliver()
        while self.tasks:
            await asyncio.gather(*self.tasks)

    def _publish(self, flow_id: UUID, ref: ActivationRef) -> None:
        self.published.append((flow_id, ref))
        if self.hold:
            self.held.append((flow_id, ref))
            return
        task = asyncio.ensure_future(self._activation(flow_id, ref))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _activation(self, flow_id: UUID, ref: ActivationRef) -> None:
        work = await self.stepper.execute(flow_id, ref)
        if work is None:
            return
        result = await self.stepper.complete(work)
        for queued, _ in result.queued:
            self._publish(flow_id, queued)
        for child in result.children:
            await self.start(self.engine, child)

    async def run_blocking(self, fn: Callable[[], T], node: GraphNode) -> T:
        """Blocking executors run in a thread, off the loop the tasks share."""
        return await asyncio.to_thread(fn)

    def shutdown(self, wait: bool = True) -> None:
        """Close the store."""
        call(self.store, "close")


__all__ = ["TaskFleet"]
