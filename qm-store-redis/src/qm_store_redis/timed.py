"""`RedisStore`'s timers (`FindsDueTimers`) and schedules (`KeepsSchedules`)."""

from __future__ import annotations

from uuid import UUID

from qm_store_redis import schedules, timers
from qm_store_redis.base import RedisBase, redis_errors
from quartermaster_engine.schedules.model import Schedule


class RedisTimed(RedisBase):
    """Due timers and schedules (the work is in `qm_store_redis.timers` and `.schedules`)."""

    @redis_errors
    async def due_timers(self, now: float, limit: int) -> list[UUID]:
        """`FindsDueTimers`: paused flows whose timer is due at ``now`` (the timer
        index, checked against each flow; see `qm_store_redis.timers`)."""
        return await timers.due(self._clients.get(), self._keys, now, limit, self._eval)

    @redis_errors
    async def add_schedule(self, schedule: Schedule) -> None:
        """`KeepsSchedules`: store the schedule; `ScheduleExistsError` if its name is taken."""
        await schedules.add(self._clients.get(), self._keys.schedules, schedule)

    @redis_errors
    async def list_schedules(self) -> list[Schedule]:
        """Every schedule, by name."""
        return await schedules.list_all(self._clients.get(), self._keys.schedules)

    @redis_errors
    async def remove_schedule(self, name: str) -> bool:
        """Remove the schedule; True if it existed."""
        return await schedules.remove(self._clients.get(), self._keys.schedules, name)

    @redis_errors
    async def claim_tick(self, name: str, tick: float, next_tick: float) -> bool:
        """Move the schedule's next tick from ``tick`` to ``next_tick`` (a script);
        True if this call moved it."""
        client = self._clients.get()
        key = self._keys.schedules
        return await schedules.claim(client, key, name, tick, next_tick, self._eval)
