"""The builder's node methods that make a flow wait: for a person (``user``,
``user_form``, with deadlines) or for a time (``sleep``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from quartermaster_graph.building.core import ChainCore
from quartermaster_graph.enums import NodeType


@dataclass(frozen=True, slots=True)
class Take:
    """``on_timeout=Take("late")`` of `GraphBuilder.user`: once the deadline passes
    unanswered, the node takes its outgoing edge labelled ``label`` (begun with
    ``.on("late")``) instead of being answered with a text (docs/time.md)."""

    label: str


class WaitNodes(ChainCore):
    """Node methods of nodes the flow waits at: a person's answer, a time."""

    def user(
        self,
        name: str = "User Input",
        prompts: list[str] | None = None,
        *,
        timeout: str | float | None = None,
        on_timeout: str | Take | None = None,
        **kwargs: Any,
    ) -> Self:
        """A User1 node: the flow pauses for the user's answer. With ``timeout`` (a
        duration: ``"24h"``, seconds) the wait has a deadline: passed unanswered,
        the node is answered with ``on_timeout`` (a text), or with
        ``on_timeout=Take("late")`` takes its edge labelled ``"late"``, begun with
        ``.on("late")`` right after this node (docs/time.md)."""
        meta: dict[str, Any] = {"text_snippets": list(prompts or [])}
        if (timeout is None) != (on_timeout is None):
            raise ValueError(f"user('{name}'): give timeout and on_timeout together")
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (str, int, float)):
                raise ValueError(f"user('{name}'): timeout must be a text like '24h' or seconds")
            meta["timeout"] = timeout if isinstance(timeout, str) else float(timeout)
            if isinstance(on_timeout, Take):
                if not isinstance(on_timeout.label, str) or not on_timeout.label:
                    raise ValueError(f"user('{name}'): Take() needs a non-empty edge label")
                meta["on_timeout_edge"] = on_timeout.label
            else:
                meta["on_timeout"] = str(on_timeout)
        self._add(NodeType.USER, name, meta, kwargs)
        if isinstance(on_timeout, Take):  # .on(label) begins the deadline's branch
            self._fork, self._fork_kind = self._tail, "timeout"
        return self

    def user_form(
        self, name: str, parameters: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> Self:
        """A UserForm1 node: the flow pauses until the user submits the form."""
        return self._add(NodeType.USER_FORM, name, {"parameters": list(parameters or [])}, kwargs)

    def sleep(
        self,
        name: str,
        duration: str | float | None = None,
        *,
        until: str | datetime | None = None,
        **kwargs: Any,
    ) -> Self:
        """A Sleep1 node: the flow waits ``duration`` (``"90s"``, ``"10m"``, ``"24h"``,
        ``"1d12h"`` or seconds) or until ``until`` (an ISO 8601 time with a zone, or
        an aware datetime), then passes on what reached it. The wake time is stored
        with the flow: a crash does not restart the sleep (docs/time.md)."""
        if (duration is None) == (until is None):
            raise ValueError(f"sleep('{name}'): give a duration or until=, not both or neither")
        meta: dict[str, Any] = {}
        if duration is not None:
            if isinstance(duration, bool) or not isinstance(duration, (str, int, float)):
                raise ValueError(f"sleep('{name}'): duration must be a text like '90s' or seconds")
            if not isinstance(duration, str) and duration < 0:
                raise ValueError(f"sleep('{name}'): duration must not be negative")
            meta["duration"] = duration if isinstance(duration, str) else float(duration)
        else:
            when = until if isinstance(until, datetime) else iso_time(name, str(until))
            if when.tzinfo is None:
                raise ValueError(f"sleep('{name}'): until={until!r} has no time zone")
            meta["until"] = when.isoformat()
        return self._add(NodeType.SLEEP, name, meta, kwargs)


def iso_time(name: str, text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"sleep('{name}'): until={text!r} is not an ISO 8601 time "
            "(like 2030-01-01T09:00:00+00:00)"
        ) from None
