"""`CeleryDispatcher`: the client side. Hands stored flows to Celery workers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar
from uuid import UUID

from qm_dispatch_celery.celery_app import make_app, publish
from qm_dispatch_celery.settings import CelerySettings
from quartermaster_engine.runner.stepper import FlowStepper
from quartermaster_engine.types import GraphNode

if TYPE_CHECKING:
    from quartermaster_engine.runner.engine import Engine

T = TypeVar("T")


class CeleryDispatcher:
    """A `RemoteDispatcher`: the nodes of a flow run on Celery workers (``qm worker``),
    never in the client. The engine stores the flow, this dispatcher publishes one
    ``qm.activation`` task per pending activation, and the workers publish the rest
    from what they commit. Needs a durable store the workers share."""

    name = "celery"
    remote = True
    concurrent = True
    max_concurrency: int | None = None

    def __init__(self, settings: CelerySettings) -> None:
        self.settings = settings
        self.app = make_app(settings)

    @classmethod
    def from_settings(cls, settings: CelerySettings) -> CeleryDispatcher:
        return cls(settings)

    async def start(self, engine: Engine, flow_id: UUID) -> int:
        """Publish every pending activation of the stored flow (see `RemoteDispatcher`)."""
        pending = await FlowStepper(engine).pending(flow_id)
        for ref, due in pending:
            await asyncio.to_thread(publish, self.app, self.settings, flow_id, ref, due)
        return len(pending)

    async def run_blocking(self, fn: Callable[[], T], node: GraphNode) -> T:
        """Not used for flows handed to workers; a thread, as other dispatchers do."""
        return await asyncio.to_thread(fn)

    def shutdown(self, wait: bool = True) -> None:
        """Close the connections to the broker."""
        self.app.close()
