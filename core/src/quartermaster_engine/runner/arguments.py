"""Checks of the public API's arguments, so a wrong one is named at the call, not deep
inside the engine (``AttributeError: 'str' object has no attribute 'int'``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from quartermaster_graph.data_limits import invalid_text


def flow_id_arg(value: Any, name: str = "flow_id") -> UUID:
    """``value`` as a flow id: a `UUID`, or a string holding one (``str(flow_id)``).

    Raises `TypeError` for other types and `ValueError` for a string that is no UUID,
    both naming the argument.
    """
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            raise ValueError(f"{name} {value!r} is not a UUID") from None
    raise TypeError(f"{name} must be a UUID or its string form, got {type(value).__name__}")


def optional_flow_id_arg(value: Any, name: str = "flow_id") -> UUID | None:
    """`flow_id_arg`, with None allowed (a new id is drawn)."""
    return None if value is None else flow_id_arg(value, name)


class InvalidTextError(ValueError):
    """A text argument is not valid Unicode (it holds a lone surrogate), so no store
    could keep it and no terminal print it."""


def text_arg(value: Any, name: str) -> str:
    """``value`` if it is a str of valid Unicode; else a `TypeError` (not a str) or an
    `InvalidTextError` (a lone surrogate, such as bytes that were not UTF-8 on a
    command line) naming the argument."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    problem = invalid_text(value)
    if problem is not None:
        raise InvalidTextError(f"{name} is not valid Unicode text: it {problem}")
    return value


def node_arg(value: Any, name: str = "node_id") -> UUID | str | None:
    """A node named by id (a `UUID`), by name or id string, or None."""
    if value is None or isinstance(value, UUID | str):
        return value
    raise TypeError(
        f"{name} must be a node's UUID, its name or id as a str, or None; "
        f"got {type(value).__name__}"
    )
