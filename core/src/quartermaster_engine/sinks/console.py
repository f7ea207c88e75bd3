"""`ConsoleSink`: a readable line per event on a terminal stream."""

from __future__ import annotations

import sys
from typing import TextIO

from quartermaster_engine.events import (
    FlowError,
    FlowEvent,
    FlowFinished,
    FlowPaused,
    FlowResumed,
    FlowStarted,
    FlowStopped,
    NodeFinished,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
    TokenGenerated,
    UserInputRequired,
)


def _clip(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


class ConsoleSink:
    """Writes one line per event (tokens inline) to ``stream`` (default stderr)."""

    name = "console"

    def __init__(self, stream: TextIO | None = None, *, tokens: bool = True) -> None:
        self.stream = stream
        self.tokens = tokens
        self._in_tokens = False

    def format(self, event: FlowEvent) -> str | None:
        """The line for ``event``, or None for events that print nothing."""
        if isinstance(event, FlowStarted):
            return f"flow {event.flow_id} started ({event.graph_name or 'graph'})"
        if isinstance(event, NodeStarted):
            visit = f" visit {event.visit}" if event.visit > 1 else ""
            attempt = f" attempt {event.attempt}" if event.attempt > 1 else ""
            return f"  ▶ {event.node_name}{visit}{attempt}"
        if isinstance(event, NodeFinished):
            return f"  ✔ {event.node_name}: {_clip(event.result)}"
        if isinstance(event, NodeRetrying):
            return (
                f"  ↻ {event.node_name}: attempt {event.attempt} failed ({_clip(event.error)}); "
                f"retrying in {event.delay:g} s"
            )
        if isinstance(event, NodeSkipped):
            return f"  ⤼ {event.node_name} skipped: {_clip(event.error)}"
        if isinstance(event, FlowError):
            kind = "error (flow goes on)" if event.recoverable else "error"
            return f"  ✖ {event.node_name}: {kind}: {event.error}"
        if isinstance(event, UserInputRequired):
            options = f" [{' / '.join(event.options)}]" if event.options else ""
            return f"  ? {event.node_name} asks: {event.prompt}{options}"
        if isinstance(event, FlowPaused):
            return f"flow {event.flow_id} paused, waiting for input"
        if isinstance(event, FlowResumed):
            return f"flow {event.flow_id} resumed ({event.reason})"
        if isinstance(event, FlowStopped):
            return f"flow {event.flow_id} stopped"
        if isinstance(event, FlowFinished):
            return f"flow {event.flow_id} {event.status}"
        if type(event).__module__ != FlowEvent.__module__:
            # An event a plugin defines (a tool call, ...): its own summary.
            summary = event.summary()
            return None if summary is None else f"  · {summary}"
        return None

    def emit(self, event: FlowEvent) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        if isinstance(event, TokenGenerated):
            if self.tokens:
                stream.write(event.token)
                self._in_tokens = True
                stream.flush()
            return
        line = self.format(event)
        if line is None:
            return
        if self._in_tokens:
            stream.write("\n")
            self._in_tokens = False
        stream.write(line + "\n")
        stream.flush()

    def close(self) -> None:
        """Nothing to release."""
