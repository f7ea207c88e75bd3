"""The line of a key's windows (``max_requests``, ``max_tokens``): first come, first
served across flows and processes.

A window's waiters queue in a slots' line of their own, named `line_of` the key (the
store's line tables, as `HoldsSlots.take_slot` keeps them). The window's check keeps
the line itself (`KeepsWindowLines`), in one atomic step of the store: a newcomer
with waiters ahead of it joins the line instead of taking the room; only the first
in line is asked the window; once its window lets it start, it leaves the line. An
activation with no waiter ahead and room in its window costs one store call. Its
waiters are counted under the key itself (`by_key`), as ``qm limits`` shows them.
A store without the ability gets `LineThenWindow`: the line, then the window, in
separate calls (fair only among those that ask the line).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from quartermaster_engine.stores.adapter import _done
from quartermaster_engine.stores.records import WindowAsk

#: What a window line's name adds to its key.
_SUFFIX = " (window)"


def line_of(key: str) -> str:
    """The name of ``key``'s window line in the store's slot lines."""
    return key + _SUFFIX


def by_key(waiting: Mapping[str, int]) -> dict[str, int]:
    """``waiting`` (`CountsWaiters.waiting_counts`) with each window line's waiters
    counted under its key."""
    counts: dict[str, int] = {}
    for name, count in waiting.items():
        key = name.removesuffix(_SUFFIX)
        counts[key] = counts.get(key, 0) + count
    return counts


def tokens_wait(used: list[tuple[float, int]], limit: int, per: float, now: float) -> float:
    """0.0 if the tokens ``used`` in the window (``(at, tokens)``, oldest first) are
    fewer than ``limit``; else the seconds until enough of them leave it."""
    total = sum(n for _, n in used)
    if total < limit:
        return 0.0
    for at, n in used:
        total -= n
        if total < limit:
            return max(at + per - now, 0.0)
    return 0.0  # not reached: with every count gone, 0 < limit


class LineThenWindow:
    """`KeepsWindowLines` for a store without it, from its other abilities (or this
    process's `LocalSlots`): the line asked first (`take_slot` with limit 0), then the
    window when first in it, then the line left: up to three calls per start, and a
    window asked directly (not through the line) is not held back."""

    def __init__(self, slots: Any, rates: Any, tokens: Any, waiters: Any) -> None:
        self.slots = slots
        self.rates = rates
        self.tokens = tokens
        self.waiters = waiters

    async def take_request_in_line(self, ask: WindowAsk) -> tuple[int, float]:
        place = await self._line(ask)
        if place > 1:
            return place, 0.0
        wait = float(await _done(self.rates.take_request(ask.key, ask.limit, ask.per, ask.now)))
        return await self._turn(ask, wait, leave=True)

    async def take_tokens_in_line(self, ask: WindowAsk, leave: bool) -> tuple[int, float]:
        place = await self._line(ask)
        if place > 1:
            return place, 0.0
        used = await _done(self.tokens.tokens_in_window(ask.key, ask.per, ask.now))
        counts = [(float(a), int(n)) for a, n in used]
        return await self._turn(ask, tokens_wait(counts, ask.limit, ask.per, ask.now), leave)

    async def _line(self, ask: WindowAsk) -> int:
        take = self.slots.take_slot(ask.line, ask.waiter, 0, ask.wall, ask.expires_at)
        return int(await _done(take))

    async def _turn(self, ask: WindowAsk, wait: float, leave: bool) -> tuple[int, float]:
        if wait > 0:
            return 1, wait
        if leave:
            await _done(self.waiters.unmark_waiting(ask.line, ask.waiter))
        return 0, 0.0


__all__ = ["LineThenWindow", "by_key", "line_of", "tokens_wait"]
