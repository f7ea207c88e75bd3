"""Helpers for the node pack's tests: graphs by node name, runners on the pack's
registry, and an event recorder."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

from qm_nodes_std import SubAssistantSettings, std_registry
from quartermaster_engine import FlowEvent, FlowRunner, NodeFinished, NodeStarted
from quartermaster_engine.testing import build_graph
from quartermaster_engine.testing.graphs import name_id
from quartermaster_graph import GraphSpec

E = TypeVar("E", bound=FlowEvent)


def node(node_type: str, **metadata: Any) -> dict[str, Any]:
    """A node spec for `graph`: its type and metadata (``fields`` for GraphNode fields)."""
    fields = metadata.pop("fields", {})
    return {"type": node_type, "metadata": metadata, **fields}


def graph(
    nodes: dict[str, str | dict[str, Any]],
    edges: Sequence[tuple[str, ...]],
    name: str = "g",
) -> GraphSpec:
    """Nodes by name (Start and End default to Start1 and End1) and (from, to[, label]) edges."""
    specs: dict[str, str | dict[str, Any]] = {"Start": "Start1"}
    specs.update(nodes)
    if "End" not in specs and any(e[1] == "End" for e in edges):
        specs["End"] = "End1"
    return build_graph(specs, edges, name=name)


def line(*names_and_specs: tuple[str, str | dict[str, Any]], name: str = "g") -> GraphSpec:
    """Start -> each node in turn -> End."""
    nodes = dict(names_and_specs)
    order = ["Start", *nodes, "End"]
    return graph(nodes, list(itertools.pairwise(order)), name=name)


def nid(name: str) -> UUID:
    """The id `graph` gives the node called ``name``."""
    return name_id(name)


@dataclass
class Recorder:
    """Collects events."""

    events: list[FlowEvent] = field(default_factory=list)

    def __call__(self, event: FlowEvent) -> None:
        self.events.append(event)

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def runs(self, flow_id: UUID | None = None) -> list[str]:
        """Names of the nodes that started, in order (of one flow, if given)."""
        return [
            e.node_name for e in self.of(NodeStarted) if flow_id is None or e.flow_id == flow_id
        ]

    def finished(self, flow_id: UUID | None = None) -> list[tuple[str, str]]:
        return [
            (e.node_name, e.result)
            for e in self.of(NodeFinished)
            if flow_id is None or e.flow_id == flow_id
        ]


def runner(
    spec: GraphSpec, settings: SubAssistantSettings | None = None, **kwargs: Any
) -> FlowRunner:
    """A runner on the pack's registry (no plugin discovery)."""
    return FlowRunner(spec, std_registry(settings), **kwargs)


class AsyncPersistence:
    """A `PersistentMemory` whose methods are ``async def`` (like the Redis store's),
    kept in process memory."""

    def __init__(self) -> None:
        from quartermaster_engine import InMemoryPersistence

        self._inner = InMemoryPersistence()

    async def read(self, agent_id: UUID, key: str) -> str | None:
        return self._inner.read(agent_id, key)

    async def write(self, agent_id: UUID, key: str, value: str) -> None:
        self._inner.write(agent_id, key, value)

    async def update(self, agent_id: UUID, key: str, value: str) -> None:
        self._inner.update(agent_id, key, value)

    async def delete(self, agent_id: UUID, key: str) -> None:
        self._inner.delete(agent_id, key)

    async def search(self, agent_id: UUID, query: str, limit: int = 10) -> list[Any]:
        return self._inner.search(agent_id, query, limit)

    async def list_keys(self, agent_id: UUID) -> list[str]:
        return self._inner.list_keys(agent_id)
