"""How long a durable store keeps ended flows: the ``retention`` setting of its
``[store]`` section (durations as `quartermaster_engine.durations` reads them)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from quartermaster_engine import durations


def parse_duration(value: Any) -> Any:
    """``"7d"``, ``"12h"``, ``"1d12h"``, ``"90s"``, ``"500ms"``, or seconds as a string
    (environment variables), as a timedelta.

    Anything else is returned unchanged for pydantic's own timedelta parsing
    (seconds as a number, ISO 8601 such as ``"P7D"``, ``"HH:MM:SS"``).
    """
    if isinstance(value, str) and durations.is_duration_text(value):
        return durations.parse_duration(value)
    return value


def _positive(value: timedelta | None) -> timedelta | None:
    if value is not None and value <= timedelta(0):
        raise ValueError("retention must be a positive duration")
    return value


#: A settings field: how long ended flows are kept before ``qm flows prune``
#: (without an age) deletes them; None keeps them until pruned by age.
Retention = Annotated[timedelta | None, BeforeValidator(parse_duration), AfterValidator(_positive)]
