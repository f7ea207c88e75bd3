"""Map1 on SQLite: a process SIGKILLed after 17 of 40 items committed, another
recovers the flow; only the 23 unfinished items run again, the join is in order
(`quartermaster_engine.testing.maps`)."""

from __future__ import annotations

from pathlib import Path

from qm_store_sqlite import SQLiteStore
from quartermaster_engine.testing.maps import check_sigkill_during_map
from quartermaster_engine.testing.processes import WorkerCommand

WORKER = Path(__file__).with_name("sqlite_map_worker.py")


def test_sigkill_during_a_map_then_recover_runs_only_unfinished_items(tmp_path: Path) -> None:
    db = tmp_path / "flows.db"
    run_worker = WorkerCommand(str(WORKER), str(db)).run
    check_sigkill_during_map(lambda: SQLiteStore(db), run_worker, tmp_path / "side")
