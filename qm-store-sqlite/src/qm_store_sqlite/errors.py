"""Errors of the SQLite store. Each names the database file it is about."""

from __future__ import annotations

from quartermaster_engine.stores.base import StoreDataError, StoreError


class SQLiteStoreError(StoreError):
    """The SQLite store could not do what was asked."""


class SQLiteDataError(SQLiteStoreError, StoreDataError):
    """A value SQLite cannot keep: not a JSON value, an integer too large for JSON or
    SQLite, a string that is not valid Unicode (a lone surrogate). Nothing was written;
    the runner fails the flow naming the node."""


class StoreOpenError(SQLiteStoreError):
    """The database file cannot be used: a missing or read-only folder, a file that
    is not SQLite, a file made by a newer version. Nothing was written to it."""


class SchemaVersionError(StoreOpenError):
    """The file's schema is newer than this version of qm-store-sqlite understands."""


class StoreDamagedError(StoreOpenError):
    """The file is damaged: corrupt pages, or tables of ours that make no schema (a
    missing table, a schema_version that is no version). Raised before anything is
    written; a transaction that meets a damaged page is rolled back."""
