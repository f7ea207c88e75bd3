"""`TestClock`: time that tests control, for flows that sleep, retry later or wait.

Give one to an engine (``Engine(clock=clock)``, ``FlowRunner(..., clock=clock)``)
and the engine's timers read it instead of real time:

- ``TestClock()`` skips time: whenever a run waits for a timer the clock jumps
  to that timer at once, so a ``24h`` sleep ends in milliseconds (like
  Temporal's time-skipping test environment);
- ``TestClock(skip=False)`` stands still until the test moves it with
  `advance` or `set`; waiting runs wake once it passes their time.

The clock is shared by threads and event loops (a waiting run polls it every
millisecond of real time), so one clock serves every engine of a test.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta

from quartermaster_engine.durations import parse_duration

#: 2030-01-01T00:00:00Z: a fixed start, so test output does not depend on the day.
DEFAULT_START = 1893456000.0


class TestClock:
    """A controllable `quartermaster_engine.clock.Clock`."""

    __test__ = False  # not a pytest test class

    def __init__(self, start: float | datetime | None = None, *, skip: bool = True) -> None:
        self._lock = threading.Lock()
        self._now = DEFAULT_START if start is None else _unix(start)
        #: Whether waiting for a timer moves the clock to it at once.
        self.skip = skip

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, by: float | str | timedelta) -> float:
        """Move the clock forward by seconds, a duration text (``"24h"``) or a
        timedelta; returns the new time."""
        if isinstance(by, str):
            seconds = parse_duration(by).total_seconds()
        elif isinstance(by, timedelta):
            seconds = by.total_seconds()
        else:
            seconds = float(by)
        if seconds < 0:
            raise ValueError(f"a clock only moves forward; advance({by!r}) goes back")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, when: float | datetime) -> None:
        """Move the clock to ``when`` (a Unix time or an aware datetime), not back."""
        target = _unix(when)
        with self._lock:
            if target < self._now:
                raise ValueError(f"a clock only moves forward; {target} is before {self._now}")
            self._now = target

    async def sleep_until(self, when: float) -> None:
        await asyncio.sleep(0)  # a wait always lets others run, as a real one does
        if self.skip:
            with self._lock:
                self._now = max(self._now, when)
            return
        # Polled, not an asyncio.Event: the clock serves threads and loops at once.
        while self.now() < when:  # noqa: ASYNC110
            await asyncio.sleep(0.001)

    def __repr__(self) -> str:
        return f"TestClock({self.now()!r}, skip={self.skip})"


def _unix(when: float | datetime) -> float:
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ValueError(f"{when.isoformat()} has no time zone; give an aware datetime")
        return when.timestamp()
    return float(when)


__all__ = ["TestClock"]
