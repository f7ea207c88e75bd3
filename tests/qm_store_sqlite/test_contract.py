"""The SQLite store passes the engine's whole store conformance kit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qm_store_sqlite import SQLiteStore
from quartermaster_engine.testing import StoreContract


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Callable[[], Any]:
        return lambda: SQLiteStore(tmp_path / "flows.db")
