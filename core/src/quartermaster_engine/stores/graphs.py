"""`GraphCache`: graphs stored once per distinct content, parsed once per process.

A durable store keeps each distinct graph once, keyed by a SHA-256 of its JSON,
so that 1,000 flows of one graph neither store nor parse it 1,000 times. This
cache holds (hash, JSON) of the graphs a process writes and the parsed graphs
it reads; the store fetches what it lacks.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from quartermaster_graph.models import GraphSpec

#: Graphs kept per store, by object and by hash.
CACHE_SIZE = 32


def graph_digest(graph: GraphSpec) -> str:
    """The SHA-256 (hex) of the graph's JSON: the key a durable store keeps it under."""
    return _digest(graph.model_dump_json())


def _digest(spec: str) -> str:
    return hashlib.sha256(spec.encode()).hexdigest()


class GraphCache:
    """Thread-safe: a store may encode on one thread and decode on another."""

    def __init__(self) -> None:
        self._by_object: dict[int, tuple[GraphSpec, str, str]] = {}
        self._by_hash: OrderedDict[str, GraphSpec] = OrderedDict()
        self._lock = threading.Lock()

    def row(self, graph: GraphSpec) -> tuple[str, str]:
        """(hash, JSON) of ``graph``; computed once per graph object."""
        cached = self._by_object.get(id(graph))
        if cached is not None and cached[0] is graph:
            return cached[1], cached[2]
        spec = graph.model_dump_json()
        digest = _digest(spec)
        with self._lock:
            if len(self._by_object) >= CACHE_SIZE:
                self._by_object.clear()
            # Holding the graph keeps its id from being reused by another object.
            self._by_object[id(graph)] = (graph, digest, spec)
            # A flow loaded back in this process gets the very object it was
            # started with, so the runner sees the same graph without comparing.
            self._remember(digest, graph)
        return digest, spec

    def cached(self, digest: str) -> GraphSpec | None:
        """The parsed graph of ``digest`` if this process has it."""
        with self._lock:
            graph = self._by_hash.get(digest)
            if graph is not None:
                self._by_hash.move_to_end(digest)
            return graph

    def parse(self, digest: str, spec: str) -> GraphSpec:
        """Parse a stored graph's JSON and keep it under ``digest``."""
        graph = GraphSpec.model_validate_json(spec)
        with self._lock:
            self._remember(digest, graph)
        return graph

    def _remember(self, digest: str, graph: GraphSpec) -> None:
        cache = self._by_hash
        cache[digest] = graph
        cache.move_to_end(digest)
        while len(cache) > CACHE_SIZE:
            cache.popitem(last=False)
