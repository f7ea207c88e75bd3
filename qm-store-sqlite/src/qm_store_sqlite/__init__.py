"""qm-store-sqlite: a durable SQLite store for Quartermaster, on aiosqlite.

::

    from qm_store_sqlite import SQLiteStore

    store = SQLiteStore("flows.db")
    runner = FlowRunner(graph, registry, store=store)

or, from a configuration: ``[store] name = "sqlite"``, ``path = "flows.db"``.
"""

from qm_store_sqlite.errors import (
    SchemaVersionError,
    SQLiteDataError,
    SQLiteStoreError,
    StoreDamagedError,
    StoreOpenError,
)
from qm_store_sqlite.persistent import SQLitePersistentMemory
from qm_store_sqlite.schema import SCHEMA_VERSION
from qm_store_sqlite.settings import SQLiteSettings
from qm_store_sqlite.store import SQLiteStore

__all__ = [
    "SCHEMA_VERSION",
    "SQLiteDataError",
    "SQLitePersistentMemory",
    "SQLiteSettings",
    "SQLiteStore",
    "SQLiteStoreError",
    "SchemaVersionError",
    "StoreDamagedError",
    "StoreOpenError",
]
