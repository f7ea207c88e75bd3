"""Schedules on PostgreSQL: three clock processes fire each of 20 ticks once; missed
ticks by policy; the store's tick compare-and-set
(`quartermaster_engine.testing.schedules`)."""

from __future__ import annotations

from pathlib import Path

from qm_pg_support import PostgresServer, store_for, unique_schema

from quartermaster_engine.testing import call
from quartermaster_engine.testing.processes import WorkerCommand
from quartermaster_engine.testing.schedules import (
    check_clocks_fire_each_tick_once,
    check_missed_ticks,
    check_schedule_store,
)

WORKER = Path(__file__).with_name("qm_pg_sleep_worker.py")


def test_three_clock_processes_start_exactly_20_flows_over_20_ticks(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    schema = unique_schema()
    start_clock = WorkerCommand(str(WORKER), pg_server.url, schema).start

    figures = check_clocks_fire_each_tick_once(
        lambda: store_for(pg_server, schema), start_clock, tmp_path
    )
    assert sum(figures["started"]) == 20
    print(f"postgres: flows started by each clock process: {figures['started']}")


def test_missed_ticks_run_once_or_are_skipped(pg_server: PostgresServer) -> None:
    schema = unique_schema()
    assert check_missed_ticks(lambda: store_for(pg_server, schema)) == {"once": 2, "skip": 1}


def test_the_store_keeps_schedules_and_claims_a_tick_once(pg_server: PostgresServer) -> None:
    store = store_for(pg_server, unique_schema())
    check_schedule_store(store)
    call(store, "close")
