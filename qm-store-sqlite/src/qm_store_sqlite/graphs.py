"""Graphs are stored once per distinct content (``qm_graphs``, keyed by a SHA-256 of
their JSON) and kept parsed in memory, so that 1,000 flows of one graph neither
store nor parse it 1,000 times."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path

from qm_store_sqlite.errors import SQLiteStoreError
from quartermaster_engine.types import GraphSpec

#: Graphs kept per store, by object and by hash.
CACHE_SIZE = 32


class GraphCache:
    """(hash, JSON) of the graphs this process writes, and parsed graphs it reads.

    Thread-safe: writes encode on the caller's thread, reads decode on the
    connection thread.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._by_object: dict[int, tuple[GraphSpec, str, str]] = {}
        self._by_hash: OrderedDict[str, GraphSpec] = OrderedDict()
        self._lock = threading.Lock()

    def row(self, graph: GraphSpec) -> tuple[str, str]:
        """(hash, JSON) of ``graph``; computed once per graph object."""
        cached = self._by_object.get(id(graph))
        if cached is not None and cached[0] is graph:
            return cached[1], cached[2]
        spec = graph.model_dump_json()
        digest = hashlib.sha256(spec.encode()).hexdigest()
        with self._lock:
            if len(self._by_object) >= CACHE_SIZE:
                self._by_object.clear()
            # Holding the graph keeps its id from being reused by another object.
            self._by_object[id(graph)] = (graph, digest, spec)
            # A flow loaded back in this process gets the very object it was
            # started with, so the runner sees the same graph without comparing.
            self._remember(digest, graph)
        return digest, spec

    def get(self, db: sqlite3.Connection, digest: str) -> GraphSpec:
        """The graph stored under ``digest``."""
        with self._lock:
            graph = self._by_hash.get(digest)
            if graph is not None:
                self._by_hash.move_to_end(digest)
                return graph
        row = db.execute("SELECT spec FROM qm_graphs WHERE hash = ?", (digest,)).fetchone()
        if row is None:
            raise SQLiteStoreError(f"{self._path} has a flow whose graph {digest} is missing")
        graph = GraphSpec.model_validate_json(row[0])
        with self._lock:
            self._remember(digest, graph)
        return graph

    def _remember(self, digest: str, graph: GraphSpec) -> None:
        cache = self._by_hash
        cache[digest] = graph
        cache.move_to_end(digest)
        while len(cache) > CACHE_SIZE:
            cache.popitem(last=False)
