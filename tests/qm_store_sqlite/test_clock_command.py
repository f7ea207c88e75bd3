"""``qm clock`` on SQLite: a process of its own that wakes parked flows and fires
schedules (docs/time.md, "Who wakes it"); two of them fire each tick once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from uuid import UUID

import pytest
from click.testing import CliRunner

from qm_store_sqlite import SQLiteStore
from quartermaster_engine import Engine, FlowStatus
from quartermaster_engine.cli import main
from quartermaster_engine.stores.records import FlowRecord
from quartermaster_engine.testing import TestClock, call
from quartermaster_graph import GraphBuilder, GraphSpec

QM = str(Path(sys.executable).with_name("qm"))


def nap_graph(duration: str) -> GraphSpec:
    return GraphBuilder("Nap").start().sleep("nap", duration).end().build()


def pass_graph() -> GraphSpec:
    return GraphBuilder("Pass").start().end().build()


def park_a_sleeping_flow(db: Path, duration: str, clock: TestClock | None = None) -> UUID:
    """A flow of `nap_graph` parked in the store (nobody holds it), as a server
    that keeps the clock leaves it."""

    async def go() -> UUID:
        async with Engine(store=SQLiteStore(db), clock=clock or TestClock()) as engine:
            engine.running.clock_kept = True  # (it parks instead of waiting)
            result = await engine.run(nap_graph(duration), "hi")
            assert result.status is FlowStatus.PAUSED
            assert result.wakes_at is not None
            return result.flow_id

    return asyncio.run(go())


def add_schedule(db: Path, cron: str, clock: TestClock | None = None) -> None:
    async def go() -> None:
        async with Engine(store=SQLiteStore(db), clock=clock or TestClock()) as engine:
            await engine.schedules.add("pulse", pass_graph(), cron, input="beat")

    asyncio.run(go())


@pytest.fixture
def qm_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QM_LOAD_PLUGINS", "qm-store-sqlite")
    for var in ("QM_STORE", "QM_DISPATCHER", "QM_CONFIG", "QM_DISABLE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "qm.toml").write_text('[store]\nname = "sqlite"\npath = "flows.db"\n')
    return tmp_path


def _events(db: Path, flow_id: UUID) -> list[str]:
    store = SQLiteStore(db)
    try:
        return [e.type for e in call(store, "read_events", flow_id)]
    finally:
        call(store, "close")


def _records(db: Path, status: FlowStatus | None = None) -> list[FlowRecord]:
    store = SQLiteStore(db)
    try:
        return list(call(store, "list_flows", status=status))
    finally:
        call(store, "close")


def test_qm_clock_once_wakes_a_due_flow_and_fires_a_missed_tick(qm_dir: Path) -> None:
    db = qm_dir / "flows.db"
    an_hour_ago = TestClock(start=time.time() - 3600)
    due = park_a_sleeping_flow(db, "59m", an_hour_ago)  # woke a minute ago, by real time
    later = park_a_sleeping_flow(db, "2h", an_hour_ago)  # wakes in an hour
    add_schedule(db, "0 * * * * *", an_hour_ago)  # every minute: ticks missed for an hour

    result = CliRunner().invoke(main, ["clock", "--once", "--json"])
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["woke"] == [str(due)]
    assert len(body["started"]) == 1  # run-once: one flow for the missed ticks
    assert _events(db, due).count("TimerFired") == 1
    assert call_status(db, due) is FlowStatus.COMPLETED
    assert call_status(db, later) is FlowStatus.PAUSED
    assert call_status(db, UUID(body["started"][0])) is FlowStatus.COMPLETED

    again = CliRunner().invoke(main, ["clock", "--once"])
    assert (again.exit_code, again.stdout) == (0, "woke 0 flows, started 0 scheduled flows\n")


def call_status(db: Path, flow_id: UUID) -> FlowStatus:
    store = SQLiteStore(db)
    try:
        return call(store, "get_flow", flow_id).status
    finally:
        call(store, "close")


def test_qm_clock_refuses_a_store_that_keeps_nothing(qm_dir: Path) -> None:
    (qm_dir / "qm.toml").write_text('[store]\nname = "memory"\n')
    result = CliRunner().invoke(main, ["clock", "--once"])
    assert (result.exit_code, result.stderr) == (
        1,
        "error: the configured store (memory) keeps nothing across processes: "
        "qm clock needs a durable store\n",
    )


def _start_clock(cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [QM, "clock", "--every", "0.05"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err


def test_a_qm_clock_process_wakes_a_sleeping_flow_and_fires_a_schedule(qm_dir: Path) -> None:
    db = qm_dir / "flows.db"
    began = time.time()
    napping = park_a_sleeping_flow(db, "1.5s", TestClock(start=began))
    wakes_at = began + 1.5
    add_schedule(db, "* * * * * *", TestClock(start=began))
    proc = _start_clock(qm_dir)
    try:
        limit = time.time() + 15
        while call_status(db, napping) is not FlowStatus.COMPLETED:
            assert time.time() < limit, "qm clock did not wake the flow in 15 s"
            time.sleep(0.02)
        woke = time.time()
        while len(_records(db, FlowStatus.COMPLETED)) < 3:  # the nap and 2 ticks
            assert time.time() < limit, "qm clock fired fewer than 2 ticks in 15 s"
            time.sleep(0.02)
    finally:
        code, err = _stop(proc)
    assert code == 0, err
    assert err.splitlines()[0].startswith("qm clock: keeping the clock of ")
    assert err.splitlines()[-1] == "qm clock: stopped"
    assert wakes_at <= woke < wakes_at + 1.5
    events = _events(db, napping)
    assert (events.count("TimerSet"), events.count("TimerFired")) == (1, 1)


@pytest.mark.slow
def test_two_qm_clock_processes_start_one_flow_per_tick(qm_dir: Path) -> None:
    db = qm_dir / "flows.db"
    call(SQLiteStore(db), "close")  # (the schema, before two processes open it)
    procs = [_start_clock(qm_dir) for _ in range(2)]
    try:
        for proc in procs:  # both keep the clock before the first tick is due
            assert proc.stderr is not None
            assert proc.stderr.readline().startswith("qm clock: keeping the clock of ")
        add_schedule(db, "* * * * * *", TestClock(start=time.time()))
        time.sleep(5)
    finally:
        stopped = [_stop(proc) for proc in procs]
    for code, err in stopped:
        assert code == 0, err
    flows = _records(db)
    assert len(flows) >= 3
    store = SQLiteStore(db)
    ticks: list[float] = []
    try:
        for record in flows:
            fired = [
                e for e in call(store, "read_events", record.flow_id) if e.type == "ScheduleFired"
            ]
            assert [e.missed for e in fired] == [0]
            ticks.append(fired[0].tick)
            assert record.status is FlowStatus.COMPLETED
    finally:
        call(store, "close")
    assert max(Counter(ticks).values()) == 1  # one flow per tick
    assert sorted(ticks) == [min(ticks) + i for i in range(len(ticks))]  # no tick skipped
