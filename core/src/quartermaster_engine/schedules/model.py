"""`Schedule`: a graph started on a cron expression, as the store keeps it.

Cron expressions are read by croniter (a well-kept parser used by Airflow and
many others; we do not write our own): five fields (minute hour day month
weekday), or six with seconds last (``"* * * * * *"``: every second). Ticks are
computed in the schedule's time zone (`zoneinfo`, default UTC), so
``"0 9 * * *"`` with ``tz="Europe/Paris"`` fires at 09:00 Paris time across
daylight-saving changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter  # type: ignore[import-untyped]

from quartermaster_graph.models import GraphSpec

Missed = Literal["run-once", "skip"]
MISSED_POLICIES: tuple[Missed, ...] = ("run-once", "skip")

#: Seconds: a single due tick this late or less is on time, not missed (the
#: clock loop looks every 0.25 s; a busy loop or a short restart is not an outage).
ON_TIME_WITHIN = 60.0


class ScheduleError(ValueError):
    """A schedule cannot be made as given (a bad cron expression, time zone, name)."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """A named schedule: start a flow of ``graph`` (a snapshot taken when the
    schedule was added) with ``input`` at each tick of ``cron`` in ``tz``.
    ``next_tick`` (a Unix time) is the first tick not yet claimed; ``missed``
    says what a clock does with ticks that passed while no clock ran."""

    name: str
    graph: GraphSpec
    cron: str
    tz: str = "UTC"
    input: str = ""
    missed: Missed = "run-once"
    next_tick: float = 0.0
    created_at: float = 0.0

    def to_json(self) -> str:
        """The schedule as stored (the graph as its JSON)."""
        body: dict[str, Any] = {
            "name": self.name,
            "graph": self.graph.model_dump(mode="json"),
            "cron": self.cron,
            "tz": self.tz,
            "input": self.input,
            "missed": self.missed,
            "next_tick": self.next_tick,
            "created_at": self.created_at,
        }
        return json.dumps(body)

    @classmethod
    def from_json(cls, text: str | bytes, next_tick: float | None = None) -> Schedule:
        """A stored schedule; ``next_tick`` (the store's column) wins over the body's."""
        body = json.loads(text)
        return cls(
            name=body["name"],
            graph=GraphSpec.model_validate(body["graph"]),
            cron=body["cron"],
            tz=body["tz"],
            input=body["input"],
            missed=body["missed"],
            next_tick=float(body["next_tick"] if next_tick is None else next_tick),
            created_at=float(body["created_at"]),
        )


def check_name(name: str) -> str:
    if not name or name != name.strip() or any(c in name for c in "\n\r\t"):
        raise ScheduleError(
            f"a schedule name must be non-empty text without spaces around it, not {name!r}"
        )
    return name


def zone(tz: str) -> ZoneInfo:
    """The time zone ``tz`` names (IANA, e.g. ``Europe/Paris``)."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown time zone {tz!r}: give an IANA name such as 'UTC' or 'Europe/Paris'"
        ) from None


def check_cron(cron: str) -> str:
    """``cron`` if croniter reads it; a `ScheduleError` naming it otherwise."""
    try:
        croniter(cron)
    except (CroniterError, ValueError, KeyError) as exc:
        raise ScheduleError(f"bad cron expression {cron!r}: {exc}") from None
    return cron


def check_missed(missed: str) -> Missed:
    for policy in MISSED_POLICIES:
        if missed == policy:
            return policy
    raise ScheduleError(f"missed must be 'run-once' or 'skip', not {missed!r}")


def tick_after(cron: str, tz: str, after: float) -> float:
    """The first tick of ``cron`` in ``tz`` strictly after the Unix time ``after``."""
    start = datetime.fromtimestamp(after, tz=UTC).astimezone(zone(tz))
    return float(croniter(cron, start).get_next(float))


def iso(when: float) -> str:
    return datetime.fromtimestamp(when, tz=UTC).isoformat()
