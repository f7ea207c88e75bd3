"""`Progress`: a command's flow events shown on stderr as they happen."""

from __future__ import annotations

from rich.console import Console

from quartermaster_engine.cli.common import (
    terminal_text,
)
from quartermaster_engine.events import FlowEvent, TokenGenerated
from quartermaster_engine.sinks.console import ConsoleSink

_STYLES = {
    "NodeFinished": "green",
    "FlowError": "red",
    "NodeRetrying": "yellow",
    "NodeSkipped": "yellow",
    "UserInputRequired": "cyan",
    "FlowFinished": "bold",
    "FlowStopped": "bold yellow",
    "FlowPaused": "bold cyan",
}


class Progress:
    """Shows events on stderr as they happen (rich styles on a terminal)."""

    def __init__(self) -> None:
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self.lines = ConsoleSink()
        self._streaming = False

    def __call__(self, event: FlowEvent) -> None:
        if isinstance(event, TokenGenerated):
            self.console.out(terminal_text(event.token), end="", highlight=False)
            self._streaming = True
            return
        line = self.lines.format(event)
        if line is None:
            return
        if self._streaming:
            self.console.out("")
            self._streaming = False
        self.console.print(terminal_text(line), style=_STYLES.get(event.type), markup=False)
