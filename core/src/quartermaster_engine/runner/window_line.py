"""The line of a key's windows (``max_requests``, ``max_tokens``): first come, first
served across flows and processes.

A window's waiters queue in a slots' line of their own (`HoldsSlots.take_slot` asked
with limit 0, which never gives a slot: it queues the waiter, keeps its ticket and
returns its place), named `line_of` the key. Only the first in line asks the window
again; the others ask the line, sooner the nearer the front. An activation whose
window has room at once asks nothing more (one store call); the line costs calls
only while an activation waits. Its waiters are counted under the key itself
(`by_key`), as ``qm limits`` shows them.
"""

from __future__ import annotations

from collections.abc import Mapping

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


__all__ = ["by_key", "line_of"]
