"""`WorkerCommand`: a store's worker script, as the process-racing kits start it.

The timer and schedule kits (`testing.timers`, `testing.schedules`) run a store's
own worker script in other processes; each check appends its arguments to the
command a store's test gives it::

    worker = WorkerCommand(WORKER_SCRIPT, server.url)
    check_sigkill_during_sleep(lambda: MyStore(server.url), worker.run, tmp_path / "side")
"""

from __future__ import annotations

import subprocess
import sys


class WorkerCommand:
    """``python SCRIPT ARGS...``: ``argv`` names the script and the store (a path, a URL,
    a schema or key prefix); `run` and `start` add a check's own arguments."""

    def __init__(self, *argv: str) -> None:
        self.argv = [sys.executable, *argv]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run to its end (at most 60 s), output captured; its exit status is the
        check's to judge (a SIGKILLed worker is expected)."""
        return subprocess.run(
            [*self.argv, *args], capture_output=True, text=True, timeout=60, check=False
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start it, output piped."""
        return subprocess.Popen(
            [*self.argv, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )


__all__ = ["WorkerCommand"]
