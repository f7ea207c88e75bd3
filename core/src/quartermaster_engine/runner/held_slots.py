"""`HeldSlots`: the concurrency slots one activation holds (`key_limits`), and how
they are given back: by the executor's block, by the activation's commit, or with
calls of their own."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from quartermaster_engine.runner.errors import FlowBusyError
from quartermaster_engine.stores.adapter import _done

if TYPE_CHECKING:
    from quartermaster_engine.runner.key_limits import KeyLimits
    from quartermaster_engine.runner.lease import LeaseKeeper

logger = logging.getLogger("quartermaster_engine.limits")


class HeldSlots:
    """The slots one activation holds (``(key, holder)``): given back as its executor's
    block ends, or, once ``handed`` to its commit (`Committer.hand_over`), by the
    commit itself on a store that `ReleasesSlotsInCommit`, else right after it.

    Under a worker (`FlowStepper`) the commit comes later, from `complete`: the slots
    travel in its `Work`, renewed meanwhile (`keep_renewing`), and are released
    first if the flow's lease is busy (`lease_for_commit`)."""

    __slots__ = ("handed", "holder", "keys", "limits", "renewing")

    def __init__(self, limits: KeyLimits, holder: str) -> None:
        self.limits = limits
        self.holder = holder
        #: The keys whose slot is taken.
        self.keys: list[str] = []
        #: Whether the activation's commit gives them back (not the block's end).
        self.handed = False
        #: Renewing them after the executor's block ended (`keep_renewing`), or None.
        self.renewing: asyncio.Task[None] | None = None

    def pairs(self) -> tuple[tuple[str, str], ...]:
        """``(key, holder)`` of each slot: `Commit.release_slots`."""
        return tuple((key, self.holder) for key in self.keys)

    def keep_renewing(self) -> None:
        """Renew the slots every third of the ttl until they are given back (`given`,
        `release`): their commit is written later, by another call."""
        if self.keys and self.renewing is None:
            self.renewing = asyncio.ensure_future(self.limits.renew(self.keys, self.holder))

    def given_back(self) -> None:
        """The slots are free (given back by their commit, or `release`d): stop
        renewing, wake this process's nearest waiter of each key, hold nothing."""
        if self.renewing is not None:
            self.renewing.cancel()
            self.renewing = None
        keys, self.keys = self.keys, []
        if keys:
            self.limits.wakes.freed(keys)

    async def release(self) -> None:
        """Give each slot up with its own store call (`HoldsSlots.release_slot`); a
        second call gives up nothing."""
        if self.renewing is not None:
            self.renewing.cancel()
            self.renewing = None
        for key in self.keys:
            try:
                await _done(self.limits.slots.release_slot(key, self.holder))
            except Exception as exc:  # it lapses after the ttl anyway
                logger.warning("slot of %s not released (%s); it lapses", key, exc)
        self.given_back()


async def lease_for_commit(
    lease: LeaseKeeper, slots: HeldSlots | None, wait: float, about: str
) -> None:
    """Take a flow's lease for the commit of executed work holding ``slots`` (waiting
    up to ``wait`` seconds). The slots wait for that commit only while the lease is
    free: when another worker holds it (a wide flow's commits queue for it), they are
    given back first, with calls of their own, rather than held idle meanwhile."""
    if slots is not None and slots.keys:
        try:
            await lease.acquire(about=about)
            return
        except FlowBusyError:
            await slots.release()
    await lease.acquire(wait=wait, about=about)
