"""How long a durable store keeps ended flows: the ``retention`` setting of its
``[store]`` section, and the durations it accepts."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|w|d|h|m|s)", re.IGNORECASE)
_SHORT = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*(?:ms|w|d|h|m|s)\s*)+$", re.IGNORECASE)
_SECONDS = re.compile(r"^\s*\d+(?:\.\d+)?\s*$")


def parse_duration(value: Any) -> Any:
    """``"7d"``, ``"12h"``, ``"1d12h"``, ``"90s"``, ``"500ms"``, or seconds as a string
    (environment variables), as a timedelta.

    Anything else is returned unchanged for pydantic's own timedelta parsing
    (seconds as a number, ISO 8601 such as ``"P7D"``, ``"HH:MM:SS"``).
    """
    if isinstance(value, str):
        if _SECONDS.match(value):
            return timedelta(seconds=float(value))
        if _SHORT.match(value):
            seconds = sum(float(n) * _UNITS[u.lower()] for n, u in _PART.findall(value))
            return timedelta(seconds=seconds)
    return value


def _positive(value: timedelta | None) -> timedelta | None:
    if value is not None and value <= timedelta(0):
        raise ValueError("retention must be a positive duration")
    return value


#: A settings field: how long ended flows are kept before ``qm flows prune``
#: (without an age) deletes them; None keeps them until pruned by age.
Retention = Annotated[timedelta | None, BeforeValidator(parse_duration), AfterValidator(_positive)]
