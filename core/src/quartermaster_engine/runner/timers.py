"""Timers that outlast a process: parking a flow whose next timer is far, waiting
it out from a script, and waking due flows from any process (the clock loop).

A run that `parks` (`FlowRun.parks`) and has nothing to do but wait for a timer
due `PARK_AFTER` seconds or more from now (a Sleep1, a retry delay) returns;
`finish` records the flow paused and gives up its lease. The timer stays in the
store with its activation (``not_before``, written by the fenced commit that set
it). Nothing of the flow stays in any process's memory. Then:

- `wait_out`: ``run``, ``recover`` and ``resume`` called from a script wait for
  the timer on the engine's clock and wake the flow themselves;
- `wake_due`: any process asks the store for due flows (`FindsDueTimers`) and
  wakes each under the flow's lease (`stored_flows.recover`). A second waker
  finds the lease held and skips, or finds the timer's activation consumed (its
  commit is fenced: a duplicate is refused), so a timer wakes its flow once;
- `keep_clock`: a loop of `clock_round`s, each calling `wake_due` and firing
  due schedules (`runner.schedules`; ``qm serve``, ``qm worker``, ``qm clock``).

Runs park only on stores with `FindsDueTimers` and only when someone will wake
them: a script's own call (`wait_out`), or, for flows started in the
background, an engine running `keep_clock`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING
from uuid import UUID

from quartermaster_engine.runner.errors import FlowBusyError, FlowStateError, error_text
from quartermaster_engine.runner.result import FlowResult
from quartermaster_engine.stores.base import FindsDueTimers

if TYPE_CHECKING:
    from quartermaster_engine.runner.engine import Engine
    from quartermaster_engine.runner.flow_run import FlowRun
    from quartermaster_engine.runner.listeners import Listener
    from quartermaster_engine.runner.queue_refs import ActivationRef
    from quartermaster_engine.runner.state import FlowState

logger = logging.getLogger("quartermaster_engine.timers")

#: Seconds: a timer due sooner is waited for by the run itself (parking costs a
#: lease and a status write both ways).
PARK_AFTER = 1.0
#: Seconds of real time between two looks for due timers in `keep_clock`.
CLOCK_EVERY = 0.25
#: Flows `wake_due` wakes at most per call, and at most at once (store connections).
WAKE_LIMIT = 100
WAKE_AT_ONCE = 16


def parks_now(run: FlowRun) -> bool:
    """Whether the run's next timer is far enough to park for (the run has timers)."""
    return run.state.timers[0][0] - run.clock.now() >= PARK_AFTER


def hand_out(
    queued: Iterable[tuple[ActivationRef, float]], state: FlowState, now: float
) -> tuple[tuple[ActivationRef, float], ...]:
    """What a remote step hands to the workers when its store keeps timers (the
    flow does not park now): ``queued`` (ref, due; 0: now) without far timers
    (due `PARK_AFTER` or more from ``now``): those stay in the store only, never a
    broker ETA task. While other activations of the flow are ready, their steps
    decide again; once none is, the flow parks (a clock wakes it) or, its first
    timer being near, its near timers go out here."""
    out = {ref: due for ref, due in queued if due - now < PARK_AFTER}
    if not state.ready:
        for due, _, act in state.timers:
            if due - now < PARK_AFTER:
                out.setdefault((act.node_id, act.visit, act.attempt), due if due > now else 0.0)
    return tuple(out.items())


def can_park(engine: Engine) -> bool:
    """Whether the engine's store can find parked flows again (`FindsDueTimers`)."""
    return engine.store_adapter.finds_due_timers


async def wait_out(
    engine: Engine, result: FlowResult, listeners: Iterable[Listener] = ()
) -> FlowResult:
    """While ``result`` is a flow parked on a timer, wait for it on the engine's clock
    and wake the flow (if another clock woke it first, follow that run instead).
    An engine that keeps the clock (`keep_clock`) returns the parked result: its
    loop wakes the flow, and no task waits for it."""
    from quartermaster_engine.runner import stored_flows  # (it imports this module)

    extra = list(listeners)
    # (A flow waiting for a person returns at once, deadline or not: the deadline
    # is a clock loop's, or the next recover's, to fire.)
    while result.wakes_at is not None and not result.waiting and not engine.running.clock_kept:
        await engine.clock.sleep_until(result.wakes_at)
        try:
            result = await stored_flows.recover(engine, result.flow_id, listeners=extra)
        except FlowBusyError:
            result = await stored_flows.result(engine, result.flow_id, wait=True)
    return result


async def wake_due(engine: Engine, limit: int = WAKE_LIMIT) -> list[UUID]:
    """Wake the flows whose timer is due by the engine's clock (at most ``limit``);
    returns those this call claimed (took the lease of; a flow another clock had
    just finished counts too, though nothing runs again). Raises `TypeError` if the
    store cannot find due timers."""
    store = engine.store_adapter.store
    if not isinstance(store, FindsDueTimers):
        raise TypeError(
            f"the store ({engine.store_name()}) cannot find due timers: it does not "
            "implement FindsDueTimers"
        )
    found = store.due_timers(engine.clock.now(), limit)
    due: list[UUID] = list(await found if inspect.isawaitable(found) else found)
    slots = asyncio.Semaphore(WAKE_AT_ONCE)
    woke = await asyncio.gather(*(_wake(engine, flow_id, slots) for flow_id in due))
    return [flow_id for flow_id, ok in zip(due, woke, strict=True) if ok]


async def _wake(engine: Engine, flow_id: UUID, slots: asyncio.Semaphore) -> bool:
    from quartermaster_engine.runner import stored_flows  # (it imports this module)

    async with slots:
        try:
            await stored_flows.recover(engine, flow_id, waker=True)
        except FlowBusyError:
            return False  # another clock (or a driver) holds it
        except FlowStateError:
            return False  # running in this process already
        return True


async def clock_round(engine: Engine) -> tuple[list[UUID], list[UUID]]:
    """One round of the clock: wake due flows (`wake_due`), then fire due schedules
    (`EngineSchedules.fire_due`); returns (the flows woken, the flows started). A
    store outage in either is logged and counts as nothing done (the next round
    tries again)."""
    try:
        woke = await wake_due(engine)
    except Exception as exc:  # a store outage: try again next round
        logger.warning("waking due timers failed: %s", error_text(exc))
        woke = []
    try:
        started = await engine.schedules.fire_due()
    except Exception as exc:  # a store outage: try again next round
        logger.warning("firing due schedules failed: %s", error_text(exc))
        started = []
    return woke, started


async def clock_once(engine: Engine) -> tuple[list[UUID], list[UUID]]:
    """One `clock_round` as a clock loop runs it (far timers park), then wait for
    the flows it started to end or park; returns (woken, started)."""
    engine.running.clock_kept = True
    try:
        found = await clock_round(engine)
        await engine.running.settle()
        return found
    finally:
        engine.running.clock_kept = False


async def keep_clock(
    engine: Engine, every: float = CLOCK_EVERY, stop: asyncio.Event | None = None
) -> None:
    """Run `clock_round` every ``every`` seconds until cancelled or ``stop`` is set;
    meanwhile flows the engine starts in the background park on far timers instead
    of holding a task. Once ``stop`` is set, the flows this engine drives in the
    background (scheduled flows) are waited for to end or park, then it returns."""
    engine.running.clock_kept = True
    try:
        while stop is None or not stop.is_set():
            woke, _ = await clock_round(engine)
            if len(woke) >= WAKE_LIMIT:  # (a full round: more may be due, go on)
                continue
            if stop is None:
                await asyncio.sleep(every)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), every)
        await engine.running.settle()
    finally:
        engine.running.clock_kept = False
