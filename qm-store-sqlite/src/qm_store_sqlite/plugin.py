"""Plugin module registered under the entry-point group 'quartermaster': the ``sqlite`` store."""

from __future__ import annotations

from qm_store_sqlite.settings import SQLiteSettings
from qm_store_sqlite.store import SQLiteStore
from quartermaster_engine.plugins import Register, hookimpl


def create_store(settings: SQLiteSettings) -> SQLiteStore:
    """The ``sqlite`` store of a validated ``[store]`` section."""
    return SQLiteStore.from_settings(settings)


@hookimpl
def qm_register_stores(register: Register) -> None:
    register(
        "sqlite",
        create_store,
        config_model=SQLiteSettings,
        description=(
            "durable store in one SQLite file (WAL): crash recovery, cross-process "
            "resume, several processes on one machine"
        ),
    )


def legacy_store(_: object) -> type[SQLiteStore]:
    """0.1.5's ``SQLiteStore`` (plain methods), at 0.1.5's import path."""
    from qm_store_sqlite.legacy import SQLiteStore as LegacySQLiteStore

    return LegacySQLiteStore


@hookimpl
def qm_register_exports(register: Register) -> None:
    register("quartermaster_engine.stores.sqlite_store:SQLiteStore", legacy_store)
