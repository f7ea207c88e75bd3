"""Durations written by people: ``90s``, ``15m``, ``12h``, ``7d``, ``2w``, ``1d12h``,
``500ms``, or plain seconds. One reading for the CLI (``--older-than``) and for
backends' settings (a store's ``retention``)."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|w|d|h|m|s)", re.IGNORECASE)
_SHORT = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*(?:ms|w|d|h|m|s)\s*)+$", re.IGNORECASE)
_SECONDS = re.compile(r"^\s*\d+(?:\.\d+)?\s*$")


def is_duration_text(text: str) -> bool:
    """Whether ``text`` is written in this module's forms."""
    return bool(_SECONDS.match(text) or _SHORT.match(text))


def parse_duration(text: str) -> timedelta:
    """``text`` as a timedelta; `ValueError` naming it when it is no duration or longer
    than a timedelta holds (999,999,999 days)."""
    if _SECONDS.match(text):
        seconds = float(text)
    elif _SHORT.match(text):
        seconds = sum(float(n) * _UNITS[u.lower()] for n, u in _PART.findall(text))
    else:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 12h, 7d, 2w or 1d12h")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(
            f"{text!r} is too long: a duration is at most {timedelta.max.days:,} days"
        ) from None
