"""Conformance of the optional `LiveChannel` ability (inherited by `StoreContract`).

A store that declares it (``isinstance(store, LiveChannel)``) must hand a
flow's messages to that flow's subscribers only, in the order one publisher
sent them, and nothing published before a subscription to it. Stores without
the ability skip these tests.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import pytest

from quartermaster_engine.stores.live import LiveChannel


class LiveChannelContract:
    """Tests of the live channel; ``store`` is the `StoreContract` fixture."""

    def test_live_messages_reach_the_flows_subscribers_in_order(self, store: Any) -> None:
        if not isinstance(store, LiveChannel):
            pytest.skip(f"{type(store).__name__} has no live channel (an optional ability)")
        channel: LiveChannel = store

        async def scenario() -> tuple[list[bytes | None], ...]:
            one, other = uuid4(), uuid4()
            await channel.publish_live(one, b"before anyone listened")
            first = await channel.subscribe_live(one)
            second = await channel.subscribe_live(one)
            elsewhere = await channel.subscribe_live(other)
            try:
                for i in range(5):
                    await channel.publish_live(one, f"token {i}".encode())
                await channel.publish_live(other, "\u00e9t\u00e9".encode())
                heard = [await first.next(5.0) for _ in range(5)]
                heard_too = [await second.next(5.0) for _ in range(5)]
                other_heard = [await elsewhere.next(5.0)]
                # Nothing more: not the message from before, not the other flow's.
                leftovers = [await first.next(0.2), await second.next(0), await elsewhere.next(0.2)]
            finally:
                for subscription in (first, second, elsewhere):
                    await subscription.close()
                    await subscription.close()  # safe twice
            return heard, heard_too, other_heard, leftovers

        heard, heard_too, other_heard, leftovers = asyncio.run(scenario())
        expected = [f"token {i}".encode() for i in range(5)]
        assert heard == expected
        assert heard_too == expected
        assert other_heard == ["\u00e9t\u00e9".encode()]
        assert leftovers == [None, None, None]
