"""Leases: which process drives a flow, and keeping that claim alive.

A driver (``run``, ``resume``, ``recover``) holds the flow's lease while it runs
the flow and renews it in the background every third of its time to live; a
paused or ended flow has none. Another process can take a flow over only once
the lease has run out, or at once when the holder ran on this host and its
process is gone (a crash: no need to wait for the lease to run out). A holder
that lost its lease finds out at its next commit, which the store refuses.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from uuid import UUID, uuid4

from quartermaster_engine.runner.errors import FlowBusyError
from quartermaster_engine.stores.adapter import StoreAdapter
from quartermaster_engine.stores.base import LeaseHeldError, StaleLeaseError
from quartermaster_engine.stores.records import Lease

logger = logging.getLogger("quartermaster_engine.runner")

#: How long a lease lives unless renewed (seconds); `FlowRunner(lease_seconds=...)`.
DEFAULT_LEASE_SECONDS = 30.0


#: Seconds between looks at a lease another holder has, first and at most.
_FIRST_POLL, _LAST_POLL = 0.002, 0.05


def new_owner() -> str:
    """A name for a driver: ``host:pid:token`` (the token tells runners of one process apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:8]}"


#: The (owner, flow) pairs this process holds or is taking the lease of right now,
#: with how many keepers do (one runner's concurrent steps of a flow, in tasks or
#: threads, take turns with it).
_driving: Counter[tuple[str, UUID]] = Counter()
_driving_lock = threading.Lock()


def owner_is_dead(owner: str, flow_id: UUID, *, mine: int = 0) -> bool:
    """Whether ``owner`` no longer drives ``flow_id``: it ran on this host in a process
    that no longer exists, or in this process and its run is over (cancelled): no
    keeper of it holds or is taking the lease, besides the ``mine`` asking."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        with _driving_lock:
            return _driving.get((owner, flow_id), 0) <= mine
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class LeaseKeeper:
    """Acquires, renews and releases one flow's lease for one driver."""

    __slots__ = (
        "_handle",
        "_held",
        "_lost",
        "_task",
        "epoch",
        "flow_id",
        "owner",
        "store",
        "ttl",
    )

    def __init__(self, store: StoreAdapter, flow_id: UUID, owner: str, ttl: float) -> None:
        self.store = store
        self.flow_id = flow_id
        self.owner = owner
        self.ttl = ttl
        self.epoch: int | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost: Callable[[str], None] | None = None
        self._held = False

    def adopt(self, epoch: int) -> None:
        """Hold the lease a new flow was created with."""
        self.epoch = epoch
        self._hold()

    async def acquire(self, *, wait: float = 0.0, about: str = "") -> Lease:
        """Take the flow's lease, waiting up to ``wait`` seconds for a live holder to
        let go. Raises `FlowBusyError` naming the holder; ``about`` says what was
        wanted (it ends the message)."""
        deadline = time.monotonic() + wait
        take_over: int | None = None
        # A holder may let go at any moment (a worker's commit holds it for
        # milliseconds): look again soon, backing off, not only once it runs out.
        poll = _FIRST_POLL
        # Counted before asking: a keeper of the same owner must not take the lease
        # over between the store granting it to us and our learning so.
        taking = not self._held
        self._hold()
        try:
            while True:
                try:
                    lease: Lease = await self.store.acquire_lease(
                        self.flow_id, self.owner, self.ttl, take_over=take_over
                    )
                except LeaseHeldError as exc:
                    held = exc.lease
                    mine = 1 if held.owner == self.owner else 0
                    if take_over != held.epoch and owner_is_dead(
                        held.owner, self.flow_id, mine=mine
                    ):
                        take_over = held.epoch
                        continue
                    left = deadline - time.monotonic()
                    if left <= 0:
                        suffix = f"; {about}" if about else ""
                        raise FlowBusyError(f"{exc}{suffix}", held.owner, held.expires_at) from None
                    until_expiry = 0.05 + max(0.0, held.expires_at - time.time())
                    await asyncio.sleep(min(left, until_expiry, poll * (0.5 + random.random())))
                    poll = min(poll * 2, _LAST_POLL)
                    continue
                self.epoch = lease.epoch
                return lease
        except BaseException:
            if taking:
                self._unhold()
            raise

    def keep(self, on_lost: Callable[[str], None]) -> None:
        """Renew the lease in the background until `stop`; ``on_lost`` hears why if
        the store says it is no longer ours."""
        self._lost = on_lost
        self._hold()
        self._arm()

    def _hold(self) -> None:
        """Count this keeper as holding the lease: a step of the same runner waiting
        for it must not mistake the holder for a dead driver of this process."""
        if not self._held:
            self._held = True
            with _driving_lock:
                _driving[(self.owner, self.flow_id)] += 1

    def _unhold(self) -> None:
        if self._held:
            self._held = False
            key = (self.owner, self.flow_id)
            with _driving_lock:
                _driving[key] -= 1
                if _driving[key] <= 0:
                    del _driving[key]

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._handle = loop.call_later(self.ttl / 3, self._renew_soon)

    def _renew_soon(self) -> None:
        self._handle = None
        self._task = asyncio.ensure_future(self._renew())

    async def _renew(self) -> None:
        epoch = self.epoch
        if epoch is None:
            return
        try:
            await self.store.renew_lease(self.flow_id, epoch, self.ttl)
        except StaleLeaseError as exc:
            if self._lost is not None:
                self._lost(str(exc))
            return
        except Exception as exc:  # the store is down: the next commit will say so
            logger.warning("could not renew the lease of flow %s: %s", self.flow_id, exc)
        self._task = None
        if self._lost is not None:
            self._arm()

    def stop(self) -> None:
        """Stop renewing (the lease itself is released by the flow's last update)."""
        self._lost = None
        self._unhold()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def release(self) -> None:
        """End the lease now (a driver that took a flow and found nothing to do)."""
        self.stop()
        if self.epoch is not None:
            await self.store.release_lease(self.flow_id, self.epoch)
