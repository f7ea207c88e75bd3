"""Plugin module registered under the entry-point group 'quartermaster': the ``postgres`` store."""

from __future__ import annotations

from qm_store_postgres.settings import PostgresSettings
from qm_store_postgres.store import PostgresStore
from quartermaster_engine.plugins import Register, hookimpl


def create_store(settings: PostgresSettings) -> PostgresStore:
    """The ``postgres`` store of a validated ``[store]`` section."""
    return PostgresStore.from_settings(settings)


@hookimpl
def qm_register_stores(register: Register) -> None:
    register(
        "postgres",
        create_store,
        config_model=PostgresSettings,
        description=(
            "durable store in PostgreSQL (asyncpg): one round trip per node commit, "
            "shared by processes and machines, retention"
        ),
    )
