"""`CompiledGraphs`: each distinct graph an engine meets, compiled once."""

from __future__ import annotations

from uuid import UUID

from quartermaster_engine.runner.compiled import CompiledGraph
from quartermaster_engine.types import GraphSpec


class CompiledGraphs:
    """Compiled graphs by graph object, and by graph id for equal graphs read back.

    Looked up by the object first: stores hand out one cached graph object per
    distinct graph, so a flow read again costs no comparison of whole graphs.
    Entries are kept for the engine's life: a compiled graph's identity marks it
    as pre-flighted (`Executors.preflight`), so one must never be dropped and its
    id reused."""

    def __init__(self) -> None:
        self._by_object: dict[int, tuple[GraphSpec, CompiledGraph]] = {}
        self._by_graph_id: dict[UUID, tuple[GraphSpec, CompiledGraph]] = {}

    def get(self, spec: GraphSpec) -> CompiledGraph:
        """The compiled form of ``spec``."""
        hit = self._by_object.get(id(spec))
        if hit is not None and hit[0] is spec:
            return hit[1]
        same = self._by_graph_id.get(spec.id)
        if same is not None and (same[0] is spec or same[0] == spec):
            compiled = same[1]
        else:
            compiled = CompiledGraph(spec)
            self._by_graph_id[spec.id] = (spec, compiled)
        self._by_object[id(spec)] = (spec, compiled)
        return compiled
