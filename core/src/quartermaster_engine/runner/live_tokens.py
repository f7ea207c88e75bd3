"""Tokens of nodes that run in another process, carried by the store's `LiveChannel`.

A worker publishes the tokens its executor streams (`TokenPublisher`), in
order, and has published all of them before it commits the node's outcome.
Each carries the number of the last event logged when its node began. A client
following the flow (`event_log.read_log` with a subscription) hands them on
after the durable events up to that number, each numbered as a local token
is: the number of the durable event before it in the client's stream (the
k-th token after event N is at ``N.k``). Tokens never enter the durable log.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from uuid import UUID

from quartermaster_engine.events import FlowEvent, TokenGenerated, event_from_dict
from quartermaster_engine.stores.live import LiveChannel

logger = logging.getLogger("quartermaster_engine.runner")

#: The ancestors of a flow, nearest first (its parent's parent, ...; not the flow).
Ancestors = Callable[[UUID], Awaitable[list[UUID]]]


def encode_token(event: TokenGenerated) -> bytes:
    """The message a worker publishes for ``event``."""
    return json.dumps(event.to_dict(), separators=(",", ":")).encode()


def decode_token(message: bytes) -> TokenGenerated | None:
    """The token ``message`` carries (its ``seq``: the last event logged when its node
    began); None (logged) if the message is not a token."""
    try:
        event = event_from_dict(json.loads(message))
    except (ValueError, TypeError, KeyError) as exc:
        logger.warning("ignored a live message that is no event: %s", exc)
        return None
    if not isinstance(event, TokenGenerated):
        logger.warning("ignored a live %s: only tokens travel live", event.type)
        return None
    return event


class TokenPublisher:
    """Publishes one flow's tokens in the order they were streamed.

    `listener` is a flow listener (it takes every event and keeps the tokens);
    one task publishes them one after the other, so they keep their order.
    `close` waits until every token is published: call it before committing the
    node, so a client reads the node's tokens before its outcome. A failed
    publish is logged once and the remaining tokens are dropped: tokens are
    live only, the node's outcome does not depend on them.
    """

    def __init__(
        self, channel: LiveChannel, flow_id: UUID, ancestors: Ancestors | None = None
    ) -> None:
        self.channel = channel
        self.flow_id = flow_id
        self.published = 0
        self._ancestors = ancestors
        self._above: list[UUID] | None = None
        self._queue: asyncio.Queue[tuple[UUID, bytes] | None] = asyncio.Queue()
        self._failed = False
        self._pump = asyncio.ensure_future(self._publish_all())

    def listener(self, event: FlowEvent) -> None:
        """Queue ``event`` for publishing if it is a token (called on the flow's loop)."""
        if isinstance(event, TokenGenerated) and not self._failed:
            message = encode_token(event)
            self._queue.put_nowait((self.flow_id, message))
            parent = event.parent_flow_id
            if parent is not None and event.flow_id == self.flow_id:
                # A child flow's node on a fleet: the followers of its parent (and
                # of theirs, up to the root) hear it too, as they do locally.
                self._queue.put_nowait((parent, message))

    async def close(self) -> None:
        """Publish what is queued, then stop."""
        self._queue.put_nowait(None)
        await self._pump

    async def _publish_all(self) -> None:
        while (item := await self._queue.get()) is not None:
            if self._failed:
                continue
            flow_id, message = item
            try:
                for target in [flow_id] if flow_id == self.flow_id else await self._up(flow_id):
                    await self.channel.publish_live(target, message)
                    self.published += 1
            except Exception as exc:
                self._failed = True
                logger.warning(
                    "live tokens of flow %s dropped: publishing failed (%s: %s)",
                    self.flow_id, type(exc).__name__, exc,
                )  # fmt: skip

    async def _up(self, parent: UUID) -> list[UUID]:
        """``parent`` and its own ancestors (read once, at the first child token)."""
        if self._above is None:
            self._above = [parent]
            if self._ancestors is not None:
                self._above += await self._ancestors(parent)
        return self._above
