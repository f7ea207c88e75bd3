"""The engine's clock: what "now" is and how a run waits for a time.

Timers (retry delays, `Sleep1` wake times) are Unix times read from an engine's
`Clock`. `SystemClock` is real time and the default; tests pass
`quartermaster_engine.testing.TestClock` to an `Engine` to skip hours in
milliseconds. Only code that waits for a timer asks the clock: an activation
that has no timer never does.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """What an engine reads the time from and waits on."""

    def now(self) -> float:
        """The current time as a Unix time (seconds)."""
        ...

    async def sleep_until(self, when: float) -> None:
        """Return once ``now() >= when`` (at once if it already is)."""
        ...


class SystemClock:
    """Real time: ``time.time()`` and ``asyncio.sleep``."""

    now = staticmethod(time.time)

    async def sleep_until(self, when: float) -> None:
        delay = when - time.time()
        while delay > 0:
            await asyncio.sleep(delay)
            delay = when - time.time()

    def __repr__(self) -> str:
        return "SystemClock()"


#: The clock of every engine not given another.
SYSTEM_CLOCK = SystemClock()

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]
