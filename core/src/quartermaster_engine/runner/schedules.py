"""Schedules on an `Engine` (``engine.schedules``): add, list, remove, and
`EngineSchedules.fire_due`, the step of the clock loop (`timers.keep_clock`)
that starts the flows of due ticks.

Each tick starts exactly one flow however many processes keep the clock:

1. a clock reads the schedules and, for one whose ``next_tick`` is due, computes
   the tick after ``now`` and claims the due ticks with the store's
   compare-and-set (`KeepsSchedules.claim_tick`: next tick := that one, only if
   it is still the tick it read). One clock wins; the others read a moved tick
   and do nothing;
2. the winner starts the flow under a flow id derived from (schedule, tick)
   (`tick_flow_id`): were a tick ever claimed twice, the store refuses the
   second flow (`FlowExistsError`).

Ticks that passed while no clock ran (more than one due, or the only one due
more than `ON_TIME_WITHIN` late) are *missed*: policy ``run-once`` starts one
flow for them (the latest tick; ScheduleFired's ``missed`` counts the others),
``skip`` starts none. Either way the schedule goes on at the next tick after now.
A clock that dies between its claim and storing the flow loses that tick (at
most once, never twice).
"""

from __future__ import annotations

import builtins
import inspect
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4, uuid5

from quartermaster_engine.events import ScheduleFired
from quartermaster_engine.runner import new_flows
from quartermaster_engine.runner.errors import FlowStateError, error_text
from quartermaster_engine.schedules.model import (
    ON_TIME_WITHIN,
    Schedule,
    ScheduleError,
    check_cron,
    check_missed,
    check_name,
    iso,
    tick_after,
    zone,
)
from quartermaster_engine.stores.base import KeepsSchedules
from quartermaster_engine.types import GraphSpec

if TYPE_CHECKING:
    from quartermaster_engine.runner.engine import Engine
    from quartermaster_engine.runner.listeners import Listener
    from quartermaster_engine.runner.result import FlowResult

logger = logging.getLogger("quartermaster_engine.schedules")

#: Namespace of the flow ids of scheduled flows (`tick_flow_id`).
SCHEDULE_NAMESPACE = UUID("5c4ed01e-0000-4000-8000-71c4f10a7000")
#: Due ticks counted at most when a clock catches up (an every-second schedule
#: after a day down): beyond, ScheduleFired's ``missed`` says this many.
COUNT_AT_MOST = 10_000


def tick_flow_id(schedule: Schedule, tick: float) -> UUID:
    """The id of the flow of ``schedule``'s ``tick`` (the same in every process; a
    schedule removed and added again under its name gets new ids)."""
    return uuid5(SCHEDULE_NAMESPACE, f"{schedule.name}\n{schedule.created_at!r}\n{tick!r}")


async def _done(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class EngineSchedules:
    """``engine.schedules``: the schedules kept in the engine's store."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _store(self) -> KeepsSchedules:
        store = self._engine.store_adapter.store
        if not isinstance(store, KeepsSchedules):
            raise TypeError(
                f"the store ({self._engine.store_name()}) cannot keep schedules: it does "
                "not implement KeepsSchedules"
            )
        return store

    async def add(
        self,
        name: str,
        graph: GraphSpec,
        cron: str,
        *,
        input: str = "",
        tz: str = "UTC",
        missed: str = "run-once",
    ) -> Schedule:
        """Store a schedule starting a flow of ``graph`` (kept as a snapshot: later
        edits of its file do not change it) with ``input`` at each tick of ``cron``
        in the time zone ``tz``. Raises `ScheduleError` for a bad name, cron
        expression, zone or policy, `ScheduleExistsError` if the name is taken."""
        check_name(name)
        check_cron(cron)
        zone(tz)
        policy = check_missed(missed)
        self._engine.compiled_for(graph)  # (a graph that cannot run is refused now)
        now = self._engine.clock.now()
        schedule = Schedule(
            name=name,
            graph=graph,
            cron=cron,
            tz=tz,
            input=input,
            missed=policy,
            next_tick=tick_after(cron, tz, now),
            created_at=now,
        )
        await _done(self._store().add_schedule(schedule))
        return schedule

    async def list(self) -> list[Schedule]:
        """Every schedule, by name."""
        return list(await _done(self._store().list_schedules()))

    async def remove(self, name: str) -> bool:
        """Remove the schedule; True if it existed. Flows it started are not touched."""
        return bool(await _done(self._store().remove_schedule(name)))

    async def run_now(
        self, name: str, *, flow_id: UUID | None = None, listeners: Iterable[Listener] = ()
    ) -> FlowResult:
        """Start one flow of schedule ``name`` now, by hand, and run it to its end or
        first pause as `Engine.run` does. Its log has ScheduleFired with ``manual``
        and ``tick`` = now; the schedule's next tick does not move (the clocks' ticks
        go on as before). Raises `ScheduleError` if there is no such schedule."""
        found = [s for s in await self.list() if s.name == name]
        if not found:
            raise ScheduleError(f"no schedule named {name!r}")
        schedule = found[0]
        engine = self._engine
        now = engine.clock.now()
        flow_id = flow_id or uuid4()
        fired = ScheduleFired(
            flow_id=flow_id, schedule=name, tick=now, tick_iso=iso(now), manual=True
        )
        return await new_flows.run(
            engine, schedule.graph, schedule.input, flow_id, list(listeners), announce=(fired,)
        )

    async def fire_due(self) -> builtins.list[UUID]:
        """Start the flows of the ticks due by the engine's clock that this call
        claims; returns their ids. Does nothing on a store without schedules."""
        store = self._engine.store_adapter.store
        if not isinstance(store, KeepsSchedules):
            return []
        now = self._engine.clock.now()
        started: builtins.list[UUID] = []
        for schedule in await _done(store.list_schedules()):
            if schedule.next_tick <= now:
                try:
                    flow_id = await self._fire(store, schedule, now)
                except Exception as exc:  # one schedule's trouble does not stop the others
                    logger.warning("schedule %r: %s", schedule.name, error_text(exc))
                    continue
                if flow_id is not None:
                    started.append(flow_id)
        return started

    async def _fire(self, store: KeepsSchedules, schedule: Schedule, now: float) -> UUID | None:
        latest, count = schedule.next_tick, 1
        following = tick_after(schedule.cron, schedule.tz, latest)
        while following <= now and count < COUNT_AT_MOST:
            latest, count = following, count + 1
            following = tick_after(schedule.cron, schedule.tz, latest)
        if following <= now:  # (too many to count: go on from now)
            latest = following
            following = tick_after(schedule.cron, schedule.tz, now)
        on_time = count == 1 and now - latest <= ON_TIME_WITHIN
        engine = self._engine
        run = None
        if on_time or schedule.missed == "run-once":
            # Built (graph checked, executors found) before claiming: a clock that
            # cannot run the graph leaves the tick to one that can.
            run = engine.new_run(schedule.graph, schedule.input, tick_flow_id(schedule, latest))
        claimed = await _done(store.claim_tick(schedule.name, schedule.next_tick, following))
        if not claimed or run is None:
            if claimed:
                logger.info("schedule %r: skipped %d missed tick(s)", schedule.name, count)
            return None
        fired = ScheduleFired(
            flow_id=run.flow_id,
            schedule=schedule.name,
            tick=latest,
            tick_iso=iso(latest),
            missed=count - 1,
        )
        try:
            await new_flows.stored(run, fired)
        except FlowStateError:
            return None  # the tick's flow exists: someone started it already
        return await new_flows.launch(engine, run)
