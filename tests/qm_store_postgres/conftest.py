"""Fixtures of the PostgreSQL store tests: one server per session on a free port."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from qm_pg_support import PostgresServer, unique_schema


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.remove()


@pytest.fixture
def schema() -> str:
    return unique_schema()
