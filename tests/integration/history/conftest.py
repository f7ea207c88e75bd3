"""Fixtures of the history tests: every store kind, each on a server or file of
the tests' own (a SQLite file in a temporary folder, a redis-server and a
PostgreSQL server started here)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[2] / "qm_store_redis"))
sys.path.insert(0, str(Path(__file__).parents[2] / "qm_store_postgres"))

from qm_pg_support import PostgresServer, unique_schema
from qm_redis_support import RedisServer, unique_prefix

from quartermaster_engine import InMemoryStore
from quartermaster_engine.testing import call

#: Makes a new store object on the test's store (the same flows each time).
StoreFactory = Callable[[], Any]


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


@pytest.fixture(params=["memory", "sqlite", "redis", "postgres"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A factory of store objects over one store; every object made is closed after."""
    made: list[Any] = []
    kind = request.param
    if kind == "memory":
        shared = InMemoryStore()
        yield lambda: shared
        return
    if kind == "sqlite":
        from qm_store_sqlite import SQLiteStore

        path = str(tmp_path / "flows.db")

        def make() -> Any:
            made.append(SQLiteStore(path))
            return made[-1]
    elif kind == "postgres":
        from qm_store_postgres import PostgresStore

        pg: PostgresServer = request.getfixturevalue("postgres_server")
        schema = unique_schema()

        def make() -> Any:
            made.append(PostgresStore(pg.url, schema_name=schema))
            return made[-1]
    else:
        from qm_store_redis import RedisStore

        server: RedisServer = request.getfixturevalue("redis_server")
        prefix = unique_prefix()

        def make() -> Any:
            made.append(RedisStore(server.url, key_prefix=prefix))
            return made[-1]

    yield make
    for store in made:
        call(store, "close")


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """A durable store several processes share, as the race workers take it."""
    if request.param == "sqlite":
        return {"kind": "sqlite", "path": str(tmp_path / "flows.db")}
    if request.param == "postgres":
        pg: PostgresServer = request.getfixturevalue("postgres_server")
        return {"kind": "postgres", "url": pg.url, "schema": unique_schema()}
    server: RedisServer = request.getfixturevalue("redis_server")
    return {"kind": "redis", "url": server.url, "prefix": unique_prefix()}
