"""`JsonlSink`: one JSON object per event, one line each, flushed per event."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import IO

from quartermaster_engine.events import FlowEvent


class JsonlSink:
    """Appends every event to ``path`` as a JSON line (``FlowEvent.to_json``).

    The file is opened on first use and flushed after every event, so another
    process can follow it while flows run. Several runners may share one sink.
    """

    name = "jsonl"

    def __init__(self, path: str | Path, *, append: bool = True) -> None:
        self.path = Path(path)
        self.append = append
        self._file: IO[str] | None = None
        self._lock = threading.Lock()

    def emit(self, event: FlowEvent) -> None:
        line = event.to_json() + "\n"
        with self._lock:
            if self._file is None:
                self._file = self.path.open("a" if self.append else "w", encoding="utf-8")
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        """Close the file (reopened on the next event)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
