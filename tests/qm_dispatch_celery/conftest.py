"""Fixtures of the Celery dispatcher tests: one redis-server (broker and store) per
module on a free port, and a fleet of real workers per test."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "qm_store_redis"))

from celery_support import Fleet
from qm_redis_support import RedisServer


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def make_fleet(tmp_path: Path, redis_server: RedisServer) -> Iterator[Callable[..., Fleet]]:
    """``make_fleet(broker_url, store, **dispatcher_settings)``: a fleet whose workers
    stop after the test (``store``: its ``[store]`` section, default the redis-server)."""
    fleets: list[Fleet] = []

    def make(
        broker_url: str | None = None, *, store: dict[str, Any] | None = None, **settings: Any
    ) -> Fleet:
        folder = tmp_path / f"fleet{len(fleets)}"
        fleets.append(Fleet(folder, redis_server.url, broker_url, store=store, **settings))
        return fleets[-1]

    yield make
    for fleet in fleets:
        fleet.stop_all()


@pytest.fixture
def fleet(make_fleet: Callable[..., Fleet]) -> Fleet:
    return make_fleet()
