"""Schedules on SQLite: three clock processes fire each of 20 ticks once; missed
ticks by policy (`quartermaster_engine.testing.schedules`)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest
from click.testing import CliRunner, Result

from qm_store_sqlite import SQLiteStore
from quartermaster_engine.cli import main
from quartermaster_engine.events import ScheduleFired
from quartermaster_engine.schedules.model import tick_after
from quartermaster_engine.testing import call
from quartermaster_engine.testing.processes import WorkerCommand
from quartermaster_engine.testing.schedules import (
    check_clocks_fire_each_tick_once,
    check_missed_ticks,
    check_schedule_store,
    tick_graph,
)
from quartermaster_graph import GraphBuilder

WORKER = Path(__file__).with_name("sqlite_sleep_worker.py")


def test_three_clock_processes_start_exactly_20_flows_over_20_ticks(tmp_path: Path) -> None:
    db = tmp_path / "flows.db"
    start_clock = WorkerCommand(str(WORKER), str(db)).start

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


@pytest.fixture
def qm_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QM_LOAD_PLUGINS", "qm-store-sqlite")
    for var in ("QM_STORE", "QM_DISPATCHER", "QM_CONFIG", "QM_DISABLE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "qm.toml").write_text('[store]\nname = "sqlite"\npath = "flows.db"\n')
    (tmp_path / "tick.json").write_text(tick_graph().model_dump_json())
    return tmp_path


def _qm(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_qm_schedules_add_list_remove(qm_dir: Path) -> None:
    assert (_qm("schedules", "list").exit_code, _qm("schedules", "list").stdout) == (
        0,
        "no schedules\n",
    )
    now = time.time()
    added = _qm("schedules", "add", "nightly", "tick.json", "--cron", "0 3 * * *", "-i", "go")
    assert added.exit_code == 0, added.stderr
    nightly = tick_after("0 3 * * *", "UTC", now)
    assert added.stdout == (
        f"added schedule nightly  Tick  cron '0 3 * * *' (UTC)  missed: run-once  "
        f"next: {_when(nightly)}\n"
    )
    paris = _qm(
        "schedules", "add", "paris", "tick.json", "--cron", "0 9 * * 1-5",
        "--tz", "Europe/Paris", "--missed", "skip",
    )  # fmt: skip
    assert paris.exit_code == 0, paris.stderr
    nine = tick_after("0 9 * * 1-5", "Europe/Paris", now)
    listed = _qm("schedules", "list")
    assert listed.stdout.splitlines() == [
        f"nightly  Tick  cron '0 3 * * *' (UTC)  missed: run-once  next: {_when(nightly)}",
        f"paris  Tick  cron '0 9 * * 1-5' (Europe/Paris)  missed: skip  next: {_when(nine)}",
    ]
    as_json = json.loads(_qm("schedules", "list", "--json").stdout)["schedules"]
    assert [(s["name"], s["input"], s["next_tick"]) for s in as_json] == [
        ("nightly", "go", nightly),
        ("paris", "", nine),
    ]
    again = _qm("schedules", "add", "paris", "tick.json", "--cron", "* * * * *")
    assert (again.exit_code, again.stderr) == (
        1,
        "error: a schedule named 'paris' already exists; remove it first\n",
    )
    removed = _qm("schedules", "remove", "paris")
    assert (removed.exit_code, removed.stdout) == (0, "removed schedule paris\n")
    gone = _qm("schedules", "remove", "paris")
    assert (gone.exit_code, gone.stderr) == (1, "error: no schedule named 'paris'\n")
    assert [
        s["name"] for s in json.loads(_qm("schedules", "list", "--json").stdout)["schedules"]
    ] == ["nightly"]


def test_qm_schedules_add_names_a_bad_cron_expression_or_time_zone(qm_dir: Path) -> None:
    bad_cron = _qm("schedules", "add", "x", "tick.json", "--cron", "61 * * * *")
    assert (bad_cron.exit_code, bad_cron.stderr) == (
        1,
        "error: bad cron expression '61 * * * *': [61 * * * *] is not acceptable, out of range\n",
    )
    bad_tz = _qm("schedules", "add", "x", "tick.json", "--cron", "* * * * *", "--tz", "Mars/Base")
    assert (bad_tz.exit_code, bad_tz.stderr) == (
        1,
        "error: unknown time zone 'Mars/Base': give an IANA name such as 'UTC' or 'Europe/Paris'\n",
    )
    bad_policy = _qm("schedules", "add", "x", "tick.json", "--cron", "* * * * *", "--missed", "all")
    assert bad_policy.exit_code == 2
    assert "'all' is not one of 'run-once', 'skip'" in bad_policy.stderr
    assert _qm("schedules", "list").stdout == "no schedules\n"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def test_qm_schedules_needs_a_store_that_outlives_the_process(qm_dir: Path) -> None:
    (qm_dir / "qm.toml").write_text('[store]\nname = "memory"\n')
    listed = _qm("schedules", "add", "x", "tick.json", "--cron", "* * * * *")
    assert (listed.exit_code, listed.stderr) == (
        1,
        "error: the configured store (memory) keeps nothing across processes: schedules "
        "need a durable store\n",
    )


def test_qm_schedules_run_fires_one_flow_by_hand(
    qm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QM_LOAD_PLUGINS", "qm-store-sqlite,qm-nodes-std")  # (Static1)
    hello = GraphBuilder("Hello").start().static("Say", "hello").end().build()
    (qm_dir / "hello.json").write_text(hello.model_dump_json())
    added = _qm("schedules", "add", "greet", "hello.json", "--cron", "0 3 * * *", "-i", "hi")
    assert added.exit_code == 0, added.stderr
    before = json.loads(_qm("schedules", "list", "--json").stdout)["schedules"][0]["next_tick"]
    began = time.time()
    ran = _qm("schedules", "run", "greet", "--json")
    assert ran.exit_code == 0, ran.stderr
    body = json.loads(ran.stdout)
    assert (body["status"], body["final_output"]) == ("completed", "hello")
    store = SQLiteStore(qm_dir / "flows.db")
    try:
        events = list(call(store, "read_events", UUID(body["flow_id"])))
    finally:
        call(store, "close")
    fired = [e for e in events if isinstance(e, ScheduleFired)]
    assert [(e.schedule, e.manual, e.missed) for e in fired] == [("greet", True, 0)]
    assert began <= fired[0].tick <= time.time()
    after = json.loads(_qm("schedules", "list", "--json").stdout)["schedules"][0]["next_tick"]
    assert after == before  # the clocks' ticks are untouched
    missing = _qm("schedules", "run", "nope")
    assert (missing.exit_code, missing.stderr) == (1, "error: no schedule named 'nope'\n")
