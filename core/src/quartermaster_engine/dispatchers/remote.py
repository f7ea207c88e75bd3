"""The remote dispatcher contract: activations run in other processes (workers).

A local dispatcher (`TaskDispatcher`) decides how activations run inside the
process that drives a flow. A remote dispatcher hands a stored flow to workers
elsewhere, which advance it from the store alone (`FlowStepper`): the client
process never executes a node. The `Engine` (and `FlowRunner` over it) then
works like this:

- ``run``/``arun``: store the flow with its start node queued (`asubmit`), call
  `start`, follow the store's durable event log (relaying each event to
  ``on_event`` and the sinks) until the flow pauses or ends, and return its
  `FlowResult` as the store holds it.
- ``submit``, `Engine.start`: store the flow and call `start`; return at once.
- ``resume``: commit the answer under the flow's lease (as locally), call `start`
  for what is now pending, follow. ``recover``: call `start`, follow.
- ``stop``: mark the flow stopped in the store; workers refuse to commit for an
  ended flow and tell running nodes through ``context.cancelled``.

A remote dispatcher needs a durable store shared with its workers; the engine
refuses any other. Node types unknown to the client are not an error before the
flow starts: the workers may have them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable
from uuid import UUID

from quartermaster_engine.dispatchers.base import TaskDispatcher

if TYPE_CHECKING:
    from quartermaster_engine.runner.engine import Engine


@runtime_checkable
class RemoteDispatcher(TaskDispatcher, Protocol):
    """A dispatcher whose activations run on workers in other processes. Its
    `TaskDispatcher` part serves only what the client itself runs (nothing, for
    flows it hands over)."""

    #: Always True: marks the dispatcher as remote (see the module).
    remote: bool

    async def start(self, engine: Engine, flow_id: UUID) -> int:
        """Hand every pending activation of the stored flow to the workers (after
        a submit, an answer, or to recover it); return how many were handed over.
        Handing over one twice must be harmless: workers drop duplicates."""
        ...


class FlowLauncher(Protocol):
    """What hands a stored flow's pending activations to a fleet's workers: a
    `RemoteDispatcher` on a client; the worker's own publisher inside a worker (it
    starts the child flows of sub-graph nodes there, see `runner.fleet_children`)."""

    async def start(self, engine: Engine, flow_id: UUID) -> int:
        """As `RemoteDispatcher.start`."""
        ...


def is_remote(dispatcher: object) -> bool:
    """Whether ``dispatcher`` runs activations on remote workers."""
    return isinstance(dispatcher, RemoteDispatcher) and bool(dispatcher.remote)
