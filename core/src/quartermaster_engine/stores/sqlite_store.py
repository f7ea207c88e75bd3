"""0.1.5's import path of the SQLite store, which now ships as qm-store-sqlite.

``from quartermaster_engine.stores.sqlite_store import SQLiteStore`` and
``SQLiteStore(db_path="my_agent.db")`` keep working when qm-store-sqlite is
installed (``pip install qm-store-sqlite``), with 0.1.5's contract: the
methods 0.1.5 documented are plain calls that return values. The class is
qm-store-sqlite's ``qm_store_sqlite.legacy.SQLiteStore``, found through the
plugin registry (see `plugins.exports`): the core imports no plugin.
"""

from __future__ import annotations

from typing import Any

from quartermaster_engine.plugins.exports import exported


def __getattr__(name: str) -> Any:
    if name == "SQLiteStore":
        return exported(
            __name__,
            name,
            "SQLiteStore now ships in its own distribution: pip install qm-store-sqlite",
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SQLiteStore"]  # noqa: F822 (served by __getattr__)
