"""Sleep1 on SQLite: a process SIGKILLed during a 2 s sleep, another recovers it and
the flow wakes at the original wake time (`quartermaster_engine.testing.timers`);
``qm flows show`` gives a sleeping flow's wake time."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from qm_store_sqlite import SQLiteStore
from quartermaster_engine import FlowRunner, FlowStatus, NodeResult, SimpleNodeRegistry
from quartermaster_engine.cli import main
from quartermaster_engine.events import TimerSet
from quartermaster_engine.runner.result import FlowResult
from quartermaster_engine.testing import TestClock, call
from quartermaster_engine.testing.processes import WorkerCommand
from quartermaster_engine.testing.timers import (
    ask_graph,
    check_answer_and_deadline_race,
    check_clocks_wake_each_timer_once,
    check_retry_delay_survives_sigkill,
    check_sigkill_during_sleep,
    sleep_graph,
)

START = TestClock().now()

WORKER = Path(__file__).with_name("sqlite_sleep_worker.py")


def test_sigkill_during_sleep_then_recover_wakes_at_the_original_time(tmp_path: Path) -> None:
    db = tmp_path / "flows.db"
    run_worker = WorkerCommand(str(WORKER), str(db)).run

    figures = check_sigkill_during_sleep(lambda: SQLiteStore(db), run_worker, tmp_path / "side")
    assert 0.0 <= figures["late"] <= 1.0
    print(f"sqlite: flow ended {figures['late']:.3f} s after the wake time")


def test_two_clock_processes_wake_each_of_50_timers_once(tmp_path: Path) -> None:
    db = tmp_path / "flows.db"
    start_clock = WorkerCommand(str(WORKER), str(db)).start

    figures = check_clocks_wake_each_timer_once(
        lambda: SQLiteStore(db), start_clock, tmp_path / "side"
    )
    assert sum(figures["woke"]) >= 50
    print(f"sqlite: the two clocks claimed {figures['woke']} of 50 flows")


def test_an_answer_and_a_deadline_racing_over_200_flows_take_one_outcome_each(
    tmp_path: Path,
) -> None:
    db = tmp_path / "flows.db"
    start_worker = WorkerCommand(str(WORKER), str(db)).start

    split = check_answer_and_deadline_race(lambda: SQLiteStore(db), start_worker, tmp_path)
    print(f"sqlite: {split}")


def test_a_retry_delay_survives_a_sigkill_and_keeps_its_time(tmp_path: Path) -> None:
    db = tmp_path / "flows.db"
    run_worker = WorkerCommand(str(WORKER), str(db)).run

    check_retry_delay_survives_sigkill(run_worker, tmp_path / "side")


def test_qm_flows_show_gives_a_sleeping_flows_wake_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QM_LOAD_PLUGINS", "qm-store-sqlite")
    for var in ("QM_STORE", "QM_DISPATCHER", "QM_CONFIG", "QM_DISABLE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "qm.toml").write_text('[store]\nname = "sqlite"\npath = "flows.db"\n')
    clock = TestClock(skip=False)
    asleep = threading.Event()
    store = SQLiteStore(tmp_path / "flows.db")
    runner = FlowRunner(
        sleep_graph(3600),
        SimpleNodeRegistry({"work": lambda ctx: NodeResult(output_text="w")}),
        store=store,
        clock=clock,
        on_event=lambda e: asleep.set() if isinstance(e, TimerSet) else None,
    )
    results: list[FlowResult] = []
    thread = threading.Thread(target=lambda: results.append(runner.run("in")))
    thread.start()
    try:
        assert asleep.wait(10)
        (row,) = call(store, "list_flows")
        cli = CliRunner()
        shown = cli.invoke(main, ["flows", "show", str(row.flow_id)])
        assert shown.exit_code == 0, shown.stderr
        assert "timer: nap sleeps until 2030-01-01 01:00:00 UTC" in shown.stdout.splitlines()
        as_json = cli.invoke(main, ["flows", "show", str(row.flow_id), "--json"])
        assert json.loads(as_json.stdout)["timers"] == [
            {
                "node": "nap",
                "kind": "sleep",
                "wakes_at": START + 3600,
                "wakes_at_iso": "2030-01-01T01:00:00+00:00",
            }
        ]
    finally:
        clock.advance("1h")
        thread.join(10)
    assert [r.status for r in results] == [FlowStatus.COMPLETED]
    runner.close()
    call(store, "close")


def test_qm_flows_show_gives_a_waits_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QM_LOAD_PLUGINS", "qm-store-sqlite")
    for var in ("QM_STORE", "QM_DISPATCHER", "QM_CONFIG", "QM_DISABLE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "qm.toml").write_text('[store]\nname = "sqlite"\npath = "flows.db"\n')
    store = SQLiteStore(tmp_path / "flows.db")
    asks = SimpleNodeRegistry(
        {"ask": lambda ctx: NodeResult(wait_for_user=True, user_prompt="ok?")}
    )
    runner = FlowRunner(ask_graph(90), asks, store=store, clock=TestClock(skip=False))
    paused = runner.run("in")
    assert (paused.status, paused.wakes_at) == (FlowStatus.PAUSED, START + 90)
    shown = CliRunner().invoke(main, ["flows", "show", str(paused.flow_id), "--json"])
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout)["timers"] == [
        {
            "node": "Ask",
            "kind": "deadline",
            "wakes_at": START + 90,
            "wakes_at_iso": "2030-01-01T00:01:30+00:00",
        }
    ]
    plain = CliRunner().invoke(main, ["flows", "show", str(paused.flow_id)])
    assert "timer: Ask times out at 2030-01-01 00:01:30 UTC" in plain.stdout.splitlines()
    runner.close()
    call(store, "close")


def test_an_answer_and_a_deadline_edge_racing_over_200_flows_take_one_outcome_each(
    tmp_path: Path,
) -> None:
    db = tmp_path / "flows.db"
    start_worker = WorkerCommand(str(WORKER), str(db)).start

    split = check_answer_and_deadline_race(
        lambda: SQLiteStore(db), start_worker, tmp_path, edge=True
    )
    print(f"sqlite, deadline edge: {split}")
