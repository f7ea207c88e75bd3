"""Errors of the PostgreSQL store. Each names the server (password hidden)."""

from __future__ import annotations

from quartermaster_engine.stores.base import StoreError


class PostgresStoreError(StoreError):
    """The PostgreSQL store could not do what was asked."""


class PostgresUnavailableError(PostgresStoreError):
    """The server could not be reached, went away mid-call, or did not answer in time."""


class StoreOpenError(PostgresStoreError):
    """The database cannot be used: wrong password, missing database, missing
    privileges, a schema made by a newer version. Nothing was written to it."""


class SchemaVersionError(StoreOpenError):
    """The schema is newer than this version of qm-store-postgres understands."""
