"""Configuration sections that hold settings and, beside them, a table per key
(``[limits]`` and ``[limits."llm:*"]``, ``[budgets]`` and ``[budgets."tenant:acme"]``).

Any name that is not a setting of the section is read as a key's table, so a
misspelled setting (``max_token = 5``) would be reported as "not a table"; this
says what it is instead."""

from __future__ import annotations

from typing import Any


def check_key_tables(data: Any, settings: set[str], section: str) -> Any:
    """``data`` unchanged if each of its names is a setting or a key's table (a
    dict); a `ValueError` naming the first one that is neither."""
    if isinstance(data, dict):
        for name, value in data.items():
            if name not in settings and not isinstance(value, dict):
                known = ", ".join(sorted(settings))
                raise ValueError(
                    f"unknown {section} setting {name!r} (settings: {known}); to set a "
                    f'key\'s {section}, write a table: [{section}."{name}"]'
                )
    return data
