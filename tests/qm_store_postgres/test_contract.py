"""PostgresStore passes the engine's store conformance kit against a real server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from qm_pg_support import PostgresServer, store_for

from quartermaster_engine.testing import StoreContract


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def make_store(self, pg_server: PostgresServer, schema: str) -> Callable[[], Any]:
        # Each call opens a new store on the same database and schema, as a second
        # process would; a schema per test keeps tests apart.
        return lambda: store_for(pg_server, schema)
