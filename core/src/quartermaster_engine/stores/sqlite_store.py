"""0.1.5's import path of the SQLite store, which now ships as qm-store-sqlite.

``from quartermaster_engine.stores.sqlite_store import SQLiteStore`` and
``SQLiteStore(db_path="my_agent.db")`` keep working when qm-store-sqlite is
installed (``pip install qm-store-sqlite``).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

try:
    from qm_store_sqlite import SQLiteStore as _SQLiteStore
    from qm_store_sqlite.settings import DEFAULT_BUSY_TIMEOUT
except ImportError as exc:  # pragma: no cover - exercised in a venv without the plugin
    if exc.name not in ("qm_store_sqlite", "aiosqlite"):
        raise
    raise ImportError(
        "SQLiteStore now ships in its own distribution: pip install qm-store-sqlite "
        f"(importing it failed: {exc})"
    ) from exc


class SQLiteStore(_SQLiteStore):
    """qm-store-sqlite's `SQLiteStore` under 0.1.5's name, accepting 0.1.5's
    ``db_path`` argument (relative paths are relative to the current folder)."""

    def __init__(
        self,
        db_path: str | Path,
        *,
        synchronous: str = "NORMAL",
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        retention: timedelta | str | float | None = None,
    ) -> None:
        super().__init__(
            db_path, synchronous=synchronous, busy_timeout=busy_timeout, retention=retention
        )


__all__ = ["SQLiteStore"]
