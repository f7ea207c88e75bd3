"""Fixtures of the budget and limit tests: stores per kind (memory, a SQLite file, a
redis-server and a PostgreSQL server of the tests' own), and the LLM pack's fake
OpenAI-compatible server."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[2] / "qm_store_redis"))
sys.path.insert(0, str(Path(__file__).parents[2] / "qm_store_postgres"))
sys.path.insert(0, str(Path(__file__).parents[2] / "qm_nodes_llm"))

from qm_pg_support import PostgresServer, unique_schema
from qm_redis_support import RedisServer, unique_prefix

from quartermaster_engine import InMemoryStore


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
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Any]:
    """Makes a store object on the test's store (every call: another connection to
    the same flows; on memory, the one store)."""
    kind = request.param
    if kind == "memory":
        shared = InMemoryStore()
        return lambda: shared
    if kind == "sqlite":
        from qm_store_sqlite import SQLiteStore

        path = str(tmp_path / "flows.db")
        return lambda: SQLiteStore(path)
    if kind == "postgres":
        from qm_store_postgres import PostgresStore

        pg: PostgresServer = request.getfixturevalue("postgres_server")
        schema = unique_schema()
        return lambda: PostgresStore(pg.url, schema_name=schema)
    from qm_store_redis import RedisStore

    server: RedisServer = request.getfixturevalue("redis_server")
    prefix = unique_prefix()
    return lambda: RedisStore(server.url, key_prefix=prefix)


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """The ``[store]`` section of a store several processes share."""
    if request.param == "sqlite":
        return {"name": "sqlite", "path": str(tmp_path / "flows.db")}
    if request.param == "postgres":
        pg: PostgresServer = request.getfixturevalue("postgres_server")
        return {"name": "postgres", "url": pg.url, "schema_name": unique_schema()}
    server: RedisServer = request.getfixturevalue("redis_server")
    return {"name": "redis", "url": server.url, "key_prefix": unique_prefix()}


@pytest.fixture
def openai_server() -> Iterator[Any]:
    """The LLM pack's scripted OpenAI-compatible server, counting requests in flight."""
    from fake_openai import FakeOpenAI

    server = FakeOpenAI().start()
    yield server
    server.stop()
