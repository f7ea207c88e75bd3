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
