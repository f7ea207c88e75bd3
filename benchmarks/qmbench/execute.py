"""Run one cell in its own process: the engine's interpreter, a timeout, the peak RSS.

The peak resident set size comes from the kernel's accounting of the child
(``wait4``), so it is known for cells that crash or are killed too. A cell that
runs past its timeout, or whose RSS passes a cap (the machine may be shared;
LangGraph's checkpointers grow by gigabytes on long chains), is killed with its
whole process group.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qmbench.measure import RESULT_MARKER
from qmbench.spec import Cell

CELL_SCRIPT = Path(__file__).resolve().parents[1] / "cell.py"
TIMEOUT, KILLED, MEMORY_CAP = "timeout", "killed", "memory cap"
_POLL_S = 0.02


@dataclass
class ProcessOutcome:
    """How the cell's process ended."""

    returncode: int | None
    signal: int | None
    killed_for: str | None
    peak_rss_mb: float
    wall_s: float
    stdout: str
    stderr: str


_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_mb(pid: int) -> float:
    """Current resident set size of ``pid`` (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE / 2**20
    except (OSError, IndexError, ValueError):
        return 0.0


def _wait(pid: int, deadline: float, mem_cap_mb: float) -> tuple[int, Any, str | None]:
    """``(status, rusage, why it was killed)`` of ``pid``; its group is killed at
    ``deadline`` or when its RSS passes ``mem_cap_mb`` (the machine is shared)."""
    killed: str | None = None
    while True:
        done_pid, status, usage = os.wait4(pid, os.WNOHANG)
        if done_pid == pid:
            return status, usage, killed
        if killed is None:
            if time.monotonic() >= deadline:
                killed = TIMEOUT
            elif _rss_mb(pid) > mem_cap_mb:
                killed = MEMORY_CAP
            if killed is not None:
                os.killpg(pid, signal.SIGKILL)
        time.sleep(_POLL_S)


def run_process(
    argv: list[str], *, timeout_s: float, mem_cap_mb: float, cwd: Path
) -> ProcessOutcome:
    """Run ``argv`` in a new process group; wait at most ``timeout_s``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.monotonic()
        proc = subprocess.Popen(
            argv, stdout=out, stderr=err, cwd=cwd, env=env, start_new_session=True
        )
        status, usage, killed_for = _wait(proc.pid, started + timeout_s, mem_cap_mb)
        wall = time.monotonic() - started
        # We reaped the child ourselves; tell Popen so it does not wait for it again.
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    return ProcessOutcome(
        returncode=os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        signal=os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        killed_for=killed_for,
        peak_rss_mb=usage.ru_maxrss / 1024,
        wall_s=wall,
        stdout=stdout,
        stderr=stderr,
    )


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_cell(
    cell: Cell,
    python: Path,
    *,
    runs: int,
    budget_s: float,
    timeout_s: float,
    mem_cap_mb: float,
    params: dict[str, Any],
    workdir: Path,
) -> dict[str, Any]:
    """Run ``cell`` with ``python`` and return its record (without the derived figures)."""
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        str(python),
        str(CELL_SCRIPT),
        "--workload",
        cell.workload,
        "--size",
        str(cell.size),
        "--variant",
        cell.variant,
        "--runs",
        str(runs),
        "--budget",
        str(budget_s),
        "--workdir",
        str(workdir),
        "--params",
        json.dumps(params),
    ]
    proc = run_process(argv, timeout_s=timeout_s, mem_cap_mb=mem_cap_mb, cwd=workdir)
    result: dict[str, Any] | None = None
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            result = json.loads(line[len(RESULT_MARKER) :])
    record: dict[str, Any] = {
        "cell": cell.id,
        "workload": cell.workload,
        "size": cell.size,
        "variant": cell.variant,
        "engine": cell.engine,
    }
    if result is None:
        if proc.killed_for == TIMEOUT:
            status, detail = TIMEOUT, f"no result within {timeout_s:g} s"
        elif proc.killed_for == MEMORY_CAP:
            status, detail = MEMORY_CAP, f"killed when its RSS passed {mem_cap_mb:,.0f} MB"
        elif proc.signal is not None:
            status = KILLED
            detail = f"process killed by {signal.Signals(proc.signal).name}"
        else:
            status = "crash"
            detail = f"process exited with {proc.returncode} and no result"
        result = {"status": status, "detail": detail, "times_s": [], "runs": 0}
        if proc.stderr.strip():
            result["stderr_tail"] = _tail(proc.stderr)
    elif proc.killed_for is not None:
        # The runs finished but the process did not exit: worth knowing (a hung close).
        result["exit_note"] = f"the process did not exit after its result ({proc.killed_for})"
    record.update(result)
    record["peak_rss_mb"] = round(proc.peak_rss_mb, 1)
    record["process_s"] = round(proc.wall_s, 3)
    return record
