"""RabbitMQ as the broker (a rabbitmq-server of the test's own), Redis as the store:
one flow's nodes on two workers, and a worker killed mid-node, whose task RabbitMQ
hands to the other worker as soon as the connection drops."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery_support import Fleet
from rabbit_support import RabbitServer
from test_failures import CHAIN_WITH_HANG, _finished
from test_fleet import fan

from quartermaster_engine import FlowStatus
from quartermaster_engine.testing import call


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitServer]:
    server = RabbitServer(tmp_path_factory.mktemp("rabbit")).start()
    yield server
    server.stop()


@pytest.mark.slow
def test_a_flow_across_two_workers_on_rabbitmq(
    make_fleet: Callable[..., Fleet], rabbit: RabbitServer
) -> None:
    fleet = make_fleet(rabbit.url)
    fleet.start_workers(2, concurrency=2)
    with fleet.runner(fan(8, sleep=0.2)) as runner:
        result = runner.run("x")
    assert result.status is FlowStatus.COMPLETED
    assert result.final_output == "+".join(sorted(f"b{i}(x)" for i in range(8)))
    assert fleet.runs() == {**{f"b{i}": 1 for i in range(8)}, "J": 1}
    assert {fleet.worker_of(pid) for pid in fleet.pids()} == {0, 1}


@pytest.mark.slow
def test_a_worker_killed_mid_node_on_rabbitmq(
    make_fleet: Callable[..., Fleet], rabbit: RabbitServer, tmp_path: Path
) -> None:
    fleet = make_fleet(rabbit.url)
    fleet.start_workers(2, concurrency=1)
    with fleet.runner(CHAIN_WITH_HANG) as runner:
        fid = runner.submit("x")
        started = fleet.wait_for_line("started", "H")
        victim = fleet.worker_of(int(started[1]))
        fleet.kill(fleet.workers[victim])
        record = fleet.wait_status(runner.store, fid, "completed", timeout=60)
        snap = call(runner.store, "load_flow", fid)
    assert record.final_output == "B(hung)"
    assert fleet.worker_of(int(fleet.wait_for_line("ran", "H")[1])) == 1 - victim
    assert fleet.runs() == {"A": 1, "H": 1, "B": 1}
    assert _finished(snap) == {"Start": 1, "A": 1, "H": 1, "B": 1, "End": 1}
