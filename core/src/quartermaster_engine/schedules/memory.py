"""Schedules kept in a process (`KeepsSchedules` for the memory store)."""

from __future__ import annotations

import threading
from dataclasses import replace

from quartermaster_engine.schedules.model import Schedule
from quartermaster_engine.stores.base import ScheduleExistsError


class MemorySchedules:
    """`KeepsSchedules` in a dict; the memory store inherits it (its schedules live
    as long as the store, in one process)."""

    def __init__(self) -> None:
        self._schedules: dict[str, Schedule] = {}
        self._schedules_lock = threading.Lock()

    def add_schedule(self, schedule: Schedule) -> None:
        with self._schedules_lock:
            if schedule.name in self._schedules:
                raise ScheduleExistsError(schedule.name)
            self._schedules[schedule.name] = schedule

    def list_schedules(self) -> list[Schedule]:
        with self._schedules_lock:
            return [self._schedules[name] for name in sorted(self._schedules)]

    def remove_schedule(self, name: str) -> bool:
        with self._schedules_lock:
            return self._schedules.pop(name, None) is not None

    def claim_tick(self, name: str, tick: float, next_tick: float) -> bool:
        with self._schedules_lock:
            schedule = self._schedules.get(name)
            if schedule is None or schedule.next_tick != tick:
                return False
            self._schedules[name] = replace(schedule, next_tick=next_tick)
            return True
