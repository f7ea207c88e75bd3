"""Delivering a flow's events to its listeners (``on_event``, sinks, ``run_async``).

Listeners run inline: each event is handed to every listener, in order, on the
flow's event-loop thread, before the flow goes on. An event a listener sees is
therefore always the flow's latest, and ``runner.stop(flow_id)`` called from a
listener takes effect before the next node starts. A listener returning an
awaitable has it scheduled on the loop. A listener that raises is logged once
per flow; the flow goes on.

The price of running inline: while a listener runs, the flow waits. Each runner
gives its listeners a time budget (``FlowRunner(listener_budget=10.0)``
seconds; None: no budget). A call that runs past it is reported while it is
still running, by a warning on the ``quartermaster_engine.runner`` logger
(so a listener that blocks forever never hangs ``run()`` silently), and once it
returns that listener is not called again for the rest of the flow (a second
warning says so). A call that never returns keeps the flow waiting: listeners
cannot be interrupted; make slow work asynchronous (return a coroutine) or hand
it to a thread of your own.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from typing import Any
from uuid import UUID

from quartermaster_engine.events import FlowEvent

logger = logging.getLogger("quartermaster_engine.runner")

Listener = tuple[str, Callable[[FlowEvent], Any]]


def with_handler(
    on_event: Callable[[FlowEvent], Any] | None, listeners: Iterable[Listener]
) -> list[Listener]:
    """``listeners`` and then ``on_event`` (when given) as one list."""
    extra = list(listeners)
    if on_event is not None:
        extra.append(("on_event", on_event))
    return extra


#: No listener names (failed or muted) yet: shared, never changed.
_NONE: frozenset[str] = frozenset()

#: Seconds a listener call may run before it is reported (FlowRunner's default).
DEFAULT_LISTENER_BUDGET = 10.0


class Listeners:
    """The listeners of one flow and what they did (failures, overruns)."""

    __slots__ = ("__weakref__", "budget", "call", "failed", "flow_id", "items", "muted", "tasks")

    def __init__(self, items: list[Listener], flow_id: UUID, budget: float | None) -> None:
        self.items = items
        self.flow_id = flow_id
        self.budget = budget
        # Made when first needed: three empty sets per flow in flight cost 650 bytes.
        self.failed: AbstractSet[str] = _NONE
        self.muted: AbstractSet[str] = _NONE
        self.tasks: set[asyncio.Future[Any]] | None = None
        #: The call in progress (listener name, event, started), read by the watchdog.
        self.call: tuple[str, FlowEvent, float] | None = None
        if budget is not None and items:
            _watchdog.watch(self)

    def deliver(self, event: FlowEvent) -> None:
        """Hand ``event`` to every listener, in order."""
        for name, listener in self.items:
            if name in self.muted:
                continue
            started = time.monotonic()
            self.call = (name, event, started)
            try:
                result = listener(event)
                if result is not None and inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    tasks = self.tasks
                    if tasks is None:
                        tasks = self.tasks = set()
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            except Exception:
                if name not in self.failed:
                    self.failed = {*self.failed, name}
                    logger.exception(
                        "event listener %s failed on %s of flow %s; the flow goes on",
                        name,
                        event.type,
                        self.flow_id,
                    )
            finally:
                self.call = None
            if self.budget is not None:
                elapsed = time.monotonic() - started
                if elapsed > self.budget:
                    self._mute(name, event, elapsed)

    def _mute(self, name: str, event: FlowEvent, elapsed: float) -> None:
        self.muted = {*self.muted, name}
        logger.warning(
            "event listener %s took %.1f s on %s of flow %s, over its budget of %g s; "
            "it is not called again for the rest of this flow",
            name,
            elapsed,
            event.type,
            self.flow_id,
            self.budget,
        )


class _Watchdog:
    """One daemon thread per process reporting listener calls that overrun their budget."""

    PERIOD = 0.1

    def __init__(self) -> None:
        self._watched: weakref.WeakSet[Listeners] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._reported: weakref.WeakKeyDictionary[Listeners, float] = weakref.WeakKeyDictionary()

    def watch(self, listeners: Listeners) -> None:
        with self._lock:
            self._watched.add(listeners)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="qm-listener-watchdog", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.PERIOD)
            with self._lock:
                watched = list(self._watched)
            now = time.monotonic()
            for item in watched:
                call, budget = item.call, item.budget
                if call is None or budget is None:
                    continue
                name, event, started = call
                if now - started > budget and self._reported.get(item) != started:
                    self._reported[item] = started
                    logger.warning(
                        "event listener %s has been running for more than %g s on %s of flow "
                        "%s and has not returned; listeners run inline, so the flow waits for "
                        "it (FlowRunner(listener_budget=...))",
                        name,
                        budget,
                        event.type,
                        item.flow_id,
                    )


_watchdog = _Watchdog()
