"""Fixtures of the Celery dispatcher tests: one redis-server (broker and store) per
module on a free port, and a fleet of real workers per test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

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
def fleet(tmp_path: Path, redis_server: RedisServer) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path, redis_server.url)
    yield fleet
    fleet.stop_all()
