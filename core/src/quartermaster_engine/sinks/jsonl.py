"""`JsonlSink`: one JSON object per event, one line each, flushed per event."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import IO

from quartermaster_engine.events import FlowEvent


class SinkPathError(OSError):
    """A sink's file cannot be written (checked when the sink is made, before any flow)."""


def check_sink_path(path: Path, sink: str) -> None:
    """Fail with a `SinkPathError` naming ``path`` if a sink could not write it.
    Writes nothing."""
    folder = path.parent
    prefix = f"the {sink} sink cannot write {path}"
    if not folder.exists():
        raise SinkPathError(f"{prefix}: its folder {folder} does not exist")
    if not folder.is_dir():
        raise SinkPathError(f"{prefix}: {folder} is not a folder")
    if path.is_dir():
        raise SinkPathError(f"{prefix}: it is a folder, not a file")
    target = path if path.exists() else folder
    if not os.access(target, os.W_OK):
        what = "the file" if target is path else f"its folder {folder}"
        raise SinkPathError(f"{prefix}: {what} is read-only")


class JsonlSink:
    """Appends every event to ``path`` as a JSON line (``FlowEvent.to_json``).

    The path is checked when the sink is made (`SinkPathError`: a missing or
    read-only folder, a folder given as the file), so a flow never starts with a
    sink that cannot write. The file is opened on first use and flushed after
    every event, so another process can follow it while flows run. Several
    runners may share one sink.
    """

    name = "jsonl"

    def __init__(self, path: str | Path, *, append: bool = True) -> None:
        self.path = Path(path)
        check_sink_path(self.path, self.name)
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
