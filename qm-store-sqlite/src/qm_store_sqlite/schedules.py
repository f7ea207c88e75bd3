"""`KeepsSchedules` on SQLite: table ``qm_schedules`` (name, next_tick, body).

A tick is claimed by ``UPDATE ... SET next_tick = ? WHERE name = ? AND
next_tick = ?`` in a write transaction: SQLite serialises writers, so of any
number of processes claiming one tick exactly one changes a row."""

from __future__ import annotations

import sqlite3

from qm_store_sqlite.connection import Database, in_read_tx, in_write_tx
from quartermaster_engine.schedules.model import Schedule
from quartermaster_engine.stores.base import ScheduleExistsError


def _add(db: sqlite3.Connection, schedule: Schedule) -> None:
    try:
        db.execute(
            "INSERT INTO qm_schedules (name, next_tick, body) VALUES (?, ?, ?)",
            (schedule.name, schedule.next_tick, schedule.to_json()),
        )
    except sqlite3.IntegrityError:
        raise ScheduleExistsError(schedule.name) from None


def _list(db: sqlite3.Connection) -> list[Schedule]:
    rows = db.execute("SELECT body, next_tick FROM qm_schedules ORDER BY name").fetchall()
    return [Schedule.from_json(body, next_tick) for body, next_tick in rows]


def _remove(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("DELETE FROM qm_schedules WHERE name = ?", (name,)).rowcount > 0


def _claim(db: sqlite3.Connection, name: str, tick: float, next_tick: float) -> bool:
    cursor = db.execute(
        "UPDATE qm_schedules SET next_tick = ? WHERE name = ? AND next_tick = ?",
        (next_tick, name, tick),
    )
    return cursor.rowcount == 1


class SQLiteSchedules:
    """The `KeepsSchedules` methods of `SQLiteStore` (which sets ``_db``)."""

    _db: Database

    async def add_schedule(self, schedule: Schedule) -> None:
        """Store the schedule; `ScheduleExistsError` if its name is taken."""
        await self._db.run(in_write_tx, _add, schedule)

    async def list_schedules(self) -> list[Schedule]:
        """Every schedule, by name."""
        found: list[Schedule] = await self._db.run(in_read_tx, _list)
        return found

    async def remove_schedule(self, name: str) -> bool:
        """Remove the schedule; True if it existed."""
        removed: bool = await self._db.run(in_write_tx, _remove, name)
        return removed

    async def claim_tick(self, name: str, tick: float, next_tick: float) -> bool:
        """Move the schedule's next tick from ``tick`` to ``next_tick``; True if this
        call moved it (the compare-and-set that claims a tick)."""
        claimed: bool = await self._db.run(in_write_tx, _claim, name, tick, next_tick)
        return claimed
