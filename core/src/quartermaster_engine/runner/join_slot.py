"""`JoinSlot`: one open join state of a node with several forward incoming edges."""

from __future__ import annotations

from typing import Any

#: A join slot position that has not received its edge yet.
MISSING: Any = object()
#: A dead delivery carries no source record.
DEAD = None


class JoinSlot:
    """One open join state of a node with several forward incoming edges."""

    __slots__ = ("count", "fired", "got", "live", "no")

    def __init__(self, no: int, width: int) -> None:
        self.no = no
        self.got: list[Any] = [MISSING] * width
        self.count = 0
        self.live = 0
        self.fired = False

    def receive(self, pos: int, source: Any) -> bool:
        """Count a delivery on incoming edge ``pos``: ``source`` is the delivering
        record, or `DEAD` for a branch that will not deliver. A repeated delivery of
        an edge counts once (returns False). The one join-counting rule: routing
        (`Router`) and restoring from the store (`FlowState.restore`) both use it."""
        if self.got[pos] is not MISSING:
            return False
        self.got[pos] = source
        self.count += 1
        if source is not DEAD:
            self.live += 1
        return True
