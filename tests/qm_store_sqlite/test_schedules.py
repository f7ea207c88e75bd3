"""Schedules on SQLite: three clock processes fire each of 20 ticks once; missed
ticks by policy (`quartermaster_engine.testing.schedules`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from qm_store_sqlite import SQLiteStore
from quartermaster_engine.testing import call
from quartermaster_engine.testing.schedules import (
    check_clocks_fire_each_tick_once,
    check_missed_ticks,
    check_schedule_store,
)

WORKER = Path(__file__).with_name("sqlite_sleep_worker.py")


def test_three_clock_processes_start_exactly_20_flows_over_20_ticks(tmp_path: Path) -> None:
    db = tmp_path / "flows.db"

    def start_clock(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(WORKER), str(db), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    figures = check_clocks_fire_each_tick_once(lambda: SQLiteStore(db), start_clock, tmp_path)
    assert sum(figures["started"]) == 20
    print(f"sqlite: flows started by each clock process: {figures['started']}")


def test_missed_ticks_run_once_or_are_skipped(tmp_path: Path) -> None:
    db = tmp_path / "flows.db"
    assert check_missed_ticks(lambda: SQLiteStore(db)) == {"once": 2, "skip": 1}


def test_the_store_keeps_schedules_and_claims_a_tick_once(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "flows.db")
    check_schedule_store(store)
    call(store, "close")
