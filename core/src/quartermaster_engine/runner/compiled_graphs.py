"""`CompiledGraphs`: each distinct graph an engine meets, compiled once, the most
recently used kept."""

from __future__ import annotations

from collections import OrderedDict
from uuid import UUID

from quartermaster_engine.runner.compiled import CompiledGraph
from quartermaster_engine.types import GraphSpec

#: Compiled graphs an engine keeps (most recently used): a server that runs graphs
#: posted inline must not keep one per graph ever posted. A flow running keeps its
#: own, whatever this cache drops.
MAX_GRAPHS = 64


class CompiledGraphs:
    """Compiled graphs by graph object, and by graph id for equal graphs read back.

    Looked up by the object first: stores hand out one cached graph object per
    distinct graph, so a flow read again costs no comparison of whole graphs."""

    def __init__(self, limit: int = MAX_GRAPHS) -> None:
        self.limit = limit
        self._by_object: OrderedDict[int, tuple[GraphSpec, CompiledGraph]] = OrderedDict()
        self._by_graph_id: OrderedDict[UUID, tuple[GraphSpec, CompiledGraph]] = OrderedDict()

    def __len__(self) -> int:
        """How many distinct graphs are kept compiled."""
        return len(self._by_graph_id)

    def get(self, spec: GraphSpec) -> CompiledGraph:
        """The compiled form of ``spec``."""
        hit = self._by_object.get(id(spec))
        if hit is not None and hit[0] is spec:
            return hit[1]
        same = self._by_graph_id.get(spec.id)
        if same is not None and (same[0] is spec or same[0] == spec):
            compiled = same[1]
            self._by_graph_id.move_to_end(spec.id)
        else:
            compiled = CompiledGraph(spec)
            self._by_graph_id[spec.id] = (spec, compiled)
            self._by_graph_id.move_to_end(spec.id)
        self._by_object[id(spec)] = (spec, compiled)
        while len(self._by_graph_id) > self.limit:
            _, (_, dropped) = self._by_graph_id.popitem(last=False)
            for key in [k for k, v in self._by_object.items() if v[1] is dropped]:
                del self._by_object[key]
        while len(self._by_object) > 4 * self.limit:
            self._by_object.popitem(last=False)
        return compiled
