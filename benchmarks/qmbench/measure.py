"""Inside a cell's process: set up, time each run, check it, report (stdlib only).

A cell's outcome is one JSON object printed on a line starting with
`RESULT_MARKER`, so engines may print what they like around it.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
import traceback
from typing import Any, Protocol

from qmbench.checks import EngineFailed, WrongResult

RESULT_MARKER = "QMBENCH-RESULT "

#: Statuses a cell can end with. The parent adds "timeout", "killed" and "skipped".
OK, WRONG, CRASH, NOT_INSTALLED, ERROR = "ok", "wrong", "crash", "not installed", "error"


class NotInstalled(Exception):
    """A package the variant needs is not importable (yet)."""


class Bench(Protocol):
    """One workload on one engine variant at one size."""

    def setup(self) -> None:
        """Build the graph and the runner (timed apart from the runs)."""

    def run(self) -> Any:
        """One timed run; returns what `check` needs."""

    def check(self, outcome: Any) -> None:
        """Raise `WrongResult` or `EngineFailed` unless the run was right."""

    def reset(self) -> None:
        """Untimed clean-up between runs (recorded calls, in-memory flows)."""

    def close(self) -> None:
        """Release stores, pools and files."""


def max_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    text = f"{name}: {text}" if text else name
    return text if len(text) <= 300 else f"{text[:297]}..."


#: A first run shorter than this is a warm-up (imports, caches, the interpreter's
#: specialisation) and is not counted; a longer one is counted, so big cells pay
#: no extra run.
WARMUP_S = 1.0
#: Short runs repeat past ``runs`` until this much time is measured (or `MAX_RUNS`),
#: so the median of sub-millisecond runs is not five samples of noise.
MIN_TOTAL_S = 0.5
MAX_RUNS = 50


class _Runs:
    """Timed, checked runs of a bench: wall and CPU time of each."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.times: list[float] = []
        self.cpu_times: list[float] = []
        self.last = 0.0  # wall time of the latest run, also of one that failed
        self.last_cpu = 0.0

    def once(self) -> None:
        """One run, checked; its times are in ``last`` and ``last_cpu``."""
        bench = self.bench
        c0 = time.process_time()
        t0 = time.perf_counter()
        try:
            outcome = bench.run()
        finally:
            self.last = time.perf_counter() - t0
        self.last_cpu = time.process_time() - c0
        bench.check(outcome)
        bench.reset()

    def keep(self) -> None:
        self.times.append(self.last)
        self.cpu_times.append(self.last_cpu)


def measure(
    bench: Bench,
    *,
    runs: int,
    budget_s: float,
    min_total_s: float = MIN_TOTAL_S,
    max_runs: int = MAX_RUNS,
) -> dict[str, Any]:
    """Set up ``bench``, then time at least ``runs`` runs, checking each one.

    A short first run is an uncounted warm-up (its time is ``first_run_s``).
    Short runs repeat until ``min_total_s`` is measured or ``max_runs`` made.
    Fewer runs are made only when the measured time would pass ``budget_s``
    (at least one run is always made); ``budget_limited`` records it.
    """
    out: dict[str, Any] = {
        "status": OK,
        "detail": "",
        "times_s": [],
        "cpu_times_s": [],
        "runs": 0,
        "budget_limited": False,
    }
    started = time.perf_counter()
    try:
        bench.setup()
    except NotInstalled as exc:
        out.update(status=NOT_INSTALLED, detail=str(exc))
        return out
    except Exception as exc:  # building the graph or runner failed: the engine's failure
        out.update(status=CRASH, detail=f"during setup: {_error_text(exc)}")
        out["traceback"] = traceback.format_exc(limit=-8)
        return out
    out["setup_s"] = time.perf_counter() - started
    out["rss_setup_mb"] = max_rss_mb()
    done = _Runs(bench)
    try:
        done.once()
        out["first_run_s"] = done.last
        if done.last >= WARMUP_S:
            done.keep()
        while True:
            n, total = len(done.times), sum(done.times)
            if n >= runs and (total >= min_total_s or n >= max_runs):
                break
            if n and total + done.last > budget_s:
                out["budget_limited"] = True
                break
            done.once()
            done.keep()
    except WrongResult as exc:
        out.update(status=WRONG, detail=str(exc), failed_run_s=done.last)
    except EngineFailed as exc:
        out.update(status=CRASH, detail=str(exc), failed_run_s=done.last)
    except NotInstalled as exc:
        out.update(status=NOT_INSTALLED, detail=str(exc))
    except Exception as exc:  # the engine raised: that is what we report
        out.update(status=CRASH, detail=_error_text(exc), failed_run_s=done.last)
        out["traceback"] = traceback.format_exc(limit=-8)
    finally:
        try:
            bench.close()
        except Exception as exc:
            out["close_error"] = _error_text(exc)
    out["times_s"], out["cpu_times_s"] = done.times, done.cpu_times
    out["runs"] = len(done.times)
    if done.times:
        out["median_s"] = statistics.median(done.times)
        out["min_s"] = min(done.times)
        out["cpu_median_s"] = statistics.median(done.cpu_times)
    return out


def emit(result: dict[str, Any]) -> None:
    """Print the cell's outcome for the parent."""
    sys.stdout.flush()
    print(RESULT_MARKER + json.dumps(result), flush=True)


def error_result(exc: BaseException) -> dict[str, Any]:
    """The outcome of a cell that could not even be built (a harness or import error)."""
    status = NOT_INSTALLED if isinstance(exc, NotInstalled) else ERROR
    return {
        "status": status,
        "detail": _error_text(exc) if status == ERROR else str(exc),
        "traceback": traceback.format_exc(limit=-8),
        "times_s": [],
        "runs": 0,
    }
