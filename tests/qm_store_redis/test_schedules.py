"""Schedules on Redis: three clock processes fire each of 20 ticks once; missed
ticks by policy; the store's tick compare-and-set
(`quartermaster_engine.testing.schedules`)."""

from __future__ import annotations

from pathlib import Path

from qm_redis_support import RedisServer, store_for, unique_prefix

from quartermaster_engine.testing import call
from quartermaster_engine.testing.processes import WorkerCommand
from quartermaster_engine.testing.schedules import (
    check_clocks_fire_each_tick_once,
    check_missed_ticks,
    check_schedule_store,
)

WORKER = Path(__file__).with_name("qm_redis_sleep_worker.py")


def test_three_clock_processes_start_exactly_20_flows_over_20_ticks(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    start_clock = WorkerCommand(str(WORKER), redis_server.url, prefix).start

    figures = check_clocks_fire_each_tick_once(
        lambda: store_for(redis_server, prefix), start_clock, tmp_path
    )
    assert sum(figures["started"]) == 20
    print(f"redis: flows started by each clock process: {figures['started']}")


def test_missed_ticks_run_once_or_are_skipped(redis_server: RedisServer) -> None:
    prefix = unique_prefix()
    assert check_missed_ticks(lambda: store_for(redis_server, prefix)) == {"once": 2, "skip": 1}


def test_the_store_keeps_schedules_and_claims_a_tick_once(redis_server: RedisServer) -> None:
    store = store_for(redis_server, unique_prefix())
    check_schedule_store(store)
    call(store, "close")
