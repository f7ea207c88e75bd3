"""Fixtures of the fencing tests: the worker script, and the stores they race on
(a SQLite file in a temporary folder, a redis-server and a PostgreSQL server of
the tests' own)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[2] / "qm_store_redis"))
sys.path.insert(0, str(Path(__file__).parents[2] / "qm_store_postgres"))

from qm_pg_support import PostgresServer, unique_schema
from qm_redis_support import RedisServer, unique_prefix


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.remove()


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "sqlite":
        return {"kind": "sqlite", "path": str(tmp_path / "flows.db")}
    if request.param == "postgres":
        pg: PostgresServer = request.getfixturevalue("postgres_server")
        return {"kind": "postgres", "url": pg.url, "schema": unique_schema()}
    server: RedisServer = request.getfixturevalue("redis_server")
    return {"kind": "redis", "url": server.url, "prefix": unique_prefix()}
