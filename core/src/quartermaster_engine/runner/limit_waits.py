"""Giving an activation's task back instead of waiting for a limit key.

A process that runs activations for a fleet (a Celery worker) would rather not
keep a thread asleep while an activation waits for a key's slot or window: it
runs the activation under `giving_back` with a waiter id that stays the same
when the task comes back (the task's id). `KeyLimits.held` then asks the store
once: when the activation may not start, it raises `LimitWait` (after queuing the
waiter in the key's line, or marking it as waiting for a window), and the task is
published again to run after `LimitWait.seconds`. The waiter keeps its place in
the line as long as it asks again within the lease time.

`LimitWait` is a `BaseException`, like `asyncio.CancelledError`: it passes the
places that turn an executor's `Exception` into a failed node run, so nothing is
written for the activation (its flow is not touched).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass


class LimitWait(BaseException):
    """The activation may not start yet: give its task back for ``seconds``."""

    def __init__(self, key: str, seconds: float) -> None:
        super().__init__(f"limit key {key} is full; ask again in {seconds:.2f} s")
        self.key = key
        self.seconds = seconds


@dataclass(frozen=True, slots=True)
class GiveBack:
    """Run under `giving_back`: ``waiter`` names the activation's task in every
    store (its place in a key's line); ``again``: the task came back after a
    `LimitWait` (it may be marked as waiting for a window)."""

    waiter: str
    again: bool


#: The `GiveBack` of the activation run in this context; None: wait in the task.
GIVES_BACK: ContextVar[GiveBack | None] = ContextVar("qm_limits_give_back", default=None)


@contextlib.contextmanager
def giving_back(waiter: str, *, again: bool) -> Iterator[None]:
    """Within the block, activations over a limit raise `LimitWait` instead of waiting."""
    token = GIVES_BACK.set(GiveBack(waiter, again))
    try:
        yield
    finally:
        GIVES_BACK.reset(token)


__all__ = ["GIVES_BACK", "GiveBack", "LimitWait", "giving_back"]
