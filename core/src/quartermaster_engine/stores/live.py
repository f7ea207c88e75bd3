"""`LiveChannel`: an optional store ability, live-only messages between processes.

Tokens a node streams on a remote worker must reach the clients following the
flow (``run_async``, the server's SSE, the page) while the node runs. They are
live only, like local tokens: never written to the durable log, lost for
whoever is not listening at the time. A store that can carry them declares it
by implementing this protocol (checked with ``isinstance``): the Redis store
over Redis pub/sub, the PostgreSQL store over ``LISTEN``/``NOTIFY``. Without
it, workers' tokens are dropped and clients see a node's text when it finishes.

Messages are small opaque byte strings, delivered at most once, in the order
one process published them, to the subscribers of the flow at that moment.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable
from uuid import UUID

from quartermaster_engine.stores.adapter import StoreAdapter


class LiveSubscription(Protocol):
    """The live messages of one flow, from the moment of subscribing."""

    async def next(self, within: float) -> bytes | None:
        """The next message, or None when ``within`` seconds pass without one
        (``within=0``: only a message already received)."""
        ...

    async def close(self) -> None:
        """Stop receiving; safe twice."""
        ...


@runtime_checkable
class LiveChannel(Protocol):
    """A store that carries live-only messages of a flow between processes."""

    async def publish_live(self, flow_id: UUID, message: bytes) -> None:
        """Hand ``message`` to the flow's current subscribers (none: it is dropped)."""
        ...

    async def subscribe_live(self, flow_id: UUID) -> LiveSubscription:
        """Subscribe to the flow's live messages; they arrive from now on."""
        ...


def live_channel(store: StoreAdapter) -> LiveChannel | None:
    """The store's live channel, or None if it has none."""
    target = store.store
    return target if isinstance(target, LiveChannel) else None
