"""Graphs are stored once per distinct content (``qm_graphs``, keyed by a SHA-256 of
their JSON) and kept parsed in memory (core's `GraphCache`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from qm_store_sqlite.errors import SQLiteStoreError
from quartermaster_engine.stores.graphs import GraphCache as _GraphCache
from quartermaster_engine.types import GraphSpec


class GraphCache(_GraphCache):
    """Core's cache, fetching missing graphs from the file's ``qm_graphs``."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._path = path

    def get(self, db: sqlite3.Connection, digest: str) -> GraphSpec:
        """The graph stored under ``digest``."""
        graph = self.cached(digest)
        if graph is not None:
            return graph
        row = db.execute("SELECT spec FROM qm_graphs WHERE hash = ?", (digest,)).fetchone()
        if row is None:
            raise SQLiteStoreError(f"{self._path} has a flow whose graph {digest} is missing")
        return self.parse(digest, row[0])
