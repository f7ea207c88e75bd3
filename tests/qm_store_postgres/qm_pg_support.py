"""Helpers of the PostgreSQL store tests: the server, schemas, stores."""

from __future__ import annotations

import os
import uuid
from typing import Any

from qm_store_postgres import PostgresStore
from qm_store_postgres.testing import PASSWORD, TemporaryServer, free_port

__all__ = ["PASSWORD", "PostgresServer", "env_ci", "free_port", "store_for", "unique_schema"]

#: The tests' server (qm_store_postgres.testing), under the name the tests use.
PostgresServer = TemporaryServer


def unique_schema() -> str:
    """A schema no other test uses: tests share one server without dropping databases."""
    return f"t{uuid.uuid4().hex[:12]}"


def store_for(server: PostgresServer, schema: str, **kwargs: Any) -> PostgresStore:
    return PostgresStore(server.url, schema_name=schema, **kwargs)


def env_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
