"""Schedules: graphs started on a cron expression by whoever keeps the clock
(docs/time.md). `Schedule` is what a store keeps; `runner.schedules` fires them."""

from quartermaster_engine.schedules.model import (
    MISSED_POLICIES,
    Missed,
    Schedule,
    ScheduleError,
)

__all__ = ["MISSED_POLICIES", "Missed", "Schedule", "ScheduleError"]
