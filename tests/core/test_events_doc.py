"""docs/events.md lists every event type of the engine with exactly its fields."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import quartermaster_engine.events as events

DOC = Path(__file__).parents[2] / "docs" / "events.md"
BASE_FIELDS = {"flow_id", "seq", "ts", "parent_flow_id"}


def _documented() -> dict[str, list[str]]:
    rows = re.findall(r"^\| `(\w+)` \| .* \| (.*) \|$", DOC.read_text(), re.M)
    return {name: re.findall(r"`(\w+)`", fields) for name, fields in rows}


def _defined() -> dict[str, list[str]]:
    found = {}
    for name in events.__all__:
        cls = getattr(events, name)
        if isinstance(cls, type) and issubclass(cls, events.FlowEvent):
            own = [f.name for f in dataclasses.fields(cls) if f.name not in BASE_FIELDS]
            found[name] = own
    found.pop("FlowEvent")
    return found


def test_every_event_type_is_documented_with_its_fields() -> None:
    defined = _defined()
    assert len(defined) >= 23
    assert _documented() == defined
