"""A process SIGKILLed during a 2 s Sleep1; another recovers it and the flow wakes at
the original wake time (`quartermaster_engine.testing.timers`, on Redis)."""

from __future__ import annotations

from pathlib import Path

from qm_redis_support import RedisServer, store_for, unique_prefix

from quartermaster_engine.testing.maps import check_sigkill_during_map
from quartermaster_engine.testing.processes import WorkerCommand
from quartermaster_engine.testing.timers import (
    check_answer_and_deadline_race,
    check_clocks_wake_each_timer_once,
    check_retry_delay_survives_sigkill,
    check_sigkill_during_sleep,
)

WORKER = Path(__file__).with_name("qm_redis_sleep_worker.py")


def test_sigkill_during_sleep_then_recover_wakes_at_the_original_time(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    run_worker = WorkerCommand(str(WORKER), redis_server.url, prefix).run

    figures = check_sigkill_during_sleep(
        lambda: store_for(redis_server, prefix), run_worker, tmp_path / "side"
    )
    assert 0.0 <= figures["late"] <= 1.0
    print(f"redis: flow ended {figures['late']:.3f} s after the wake time")


def test_two_clock_processes_wake_each_of_50_timers_once(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    start_clock = WorkerCommand(str(WORKER), redis_server.url, prefix).start

    figures = check_clocks_wake_each_timer_once(
        lambda: store_for(redis_server, prefix), start_clock, tmp_path / "side"
    )
    assert sum(figures["woke"]) >= 50
    print(f"redis: the two clocks claimed {figures['woke']} of 50 flows")


def test_an_answer_and_a_deadline_racing_over_200_flows_take_one_outcome_each(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    start_worker = WorkerCommand(str(WORKER), redis_server.url, prefix).start

    split = check_answer_and_deadline_race(
        lambda: store_for(redis_server, prefix), start_worker, tmp_path
    )
    print(f"redis: {split}")


def test_a_retry_delay_survives_a_sigkill_and_keeps_its_time(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    run_worker = WorkerCommand(str(WORKER), redis_server.url, prefix).run

    check_retry_delay_survives_sigkill(run_worker, tmp_path / "side")


def test_an_answer_and_a_deadline_edge_racing_over_200_flows_take_one_outcome_each(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    start_worker = WorkerCommand(str(WORKER), redis_server.url, prefix).start

    split = check_answer_and_deadline_race(
        lambda: store_for(redis_server, prefix), start_worker, tmp_path, edge=True
    )
    print(f"redis, deadline edge: {split}")


def test_sigkill_during_a_map_then_recover_runs_only_unfinished_items(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    run_worker = WorkerCommand(str(WORKER), redis_server.url, prefix).run
    check_sigkill_during_map(lambda: store_for(redis_server, prefix), run_worker, tmp_path / "side")
