"""`KeepsSchedules` on PostgreSQL: table ``qm_schedules`` (name, next_tick, body).

A tick is claimed by ``UPDATE ... SET next_tick = $3 WHERE name = $1 AND
next_tick = $2``: a second UPDATE of the row waits for the first to commit,
then finds the tick moved (READ COMMITTED re-checks the condition on the new
row), so of any number of clocks claiming one tick exactly one wins."""

from __future__ import annotations

from qm_store_postgres.database import Database, fetch, fetchval
from quartermaster_engine.schedules.model import Schedule
from quartermaster_engine.stores.base import ScheduleExistsError


class PostgresSchedules:
    """The `KeepsSchedules` methods of `PostgresStore` (which sets ``_db`` and
    ``schema_name``)."""

    _db: Database
    schema_name: str

    async def add_schedule(self, schedule: Schedule) -> None:
        """Store the schedule; `ScheduleExistsError` if its name is taken."""
        added = await self._db.run(
            fetchval,
            f"INSERT INTO {self.schema_name}.qm_schedules (name, next_tick, body) "
            "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING name",
            schedule.name,
            schedule.next_tick,
            schedule.to_json(),
        )
        if added is None:
            raise ScheduleExistsError(schedule.name)

    async def list_schedules(self) -> list[Schedule]:
        """Every schedule, by name."""
        rows = await self._db.run(
            fetch,
            f"SELECT body, next_tick FROM {self.schema_name}.qm_schedules ORDER BY name",
        )
        return [Schedule.from_json(row[0], row[1]) for row in rows]

    async def remove_schedule(self, name: str) -> bool:
        """Remove the schedule; True if it existed."""
        removed = await self._db.run(
            fetchval,
            f"DELETE FROM {self.schema_name}.qm_schedules WHERE name = $1 RETURNING name",
            name,
        )
        return removed is not None

    async def claim_tick(self, name: str, tick: float, next_tick: float) -> bool:
        """Move the schedule's next tick from ``tick`` to ``next_tick``; True if this
        call moved it (the compare-and-set that claims a tick)."""
        moved = await self._db.run(
            fetchval,
            f"UPDATE {self.schema_name}.qm_schedules SET next_tick = $3 "
            "WHERE name = $1 AND next_tick = $2 RETURNING name",
            name,
            tick,
            next_tick,
        )
        return moved is not None
