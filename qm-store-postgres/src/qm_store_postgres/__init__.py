"""qm-store-postgres: a durable PostgreSQL store for Quartermaster, on asyncpg.

::

    from qm_store_postgres import PostgresStore

    store = PostgresStore("postgresql://qm:secret@db.internal/agents")
    runner = FlowRunner(graph, registry, store=store)

or, from a configuration: ``[store] name = "postgres"``, ``dsn = "postgresql://..."``.
"""

from qm_store_postgres.errors import (
    PostgresStoreError,
    PostgresUnavailableError,
    SchemaVersionError,
    StoreOpenError,
)
from qm_store_postgres.persistent import PostgresPersistentMemory
from qm_store_postgres.schema import SCHEMA_VERSION
from qm_store_postgres.settings import PostgresSettings
from qm_store_postgres.store import PostgresStore

__all__ = [
    "SCHEMA_VERSION",
    "PostgresPersistentMemory",
    "PostgresSettings",
    "PostgresStore",
    "PostgresStoreError",
    "PostgresUnavailableError",
    "SchemaVersionError",
    "StoreOpenError",
]
