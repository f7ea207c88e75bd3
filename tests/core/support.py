"""Helpers for runner tests: build graphs by node name and trace what executors see."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from quartermaster_engine import ExecutionContext, FlowEvent, NodeResult, SimpleNodeRegistry
from quartermaster_graph import GraphEdge, GraphNode, GraphSpec, NodeType


def node_id(name: str) -> UUID:
    """Stable ids so tests can refer to nodes by name."""
    return uuid5(NAMESPACE_URL, f"qm-test-node/{name}")


def build(
    nodes: dict[str, str | dict[str, Any]],
    edges: list[tuple[str, str] | tuple[str, str, str]],
    *,
    start: str = "Start",
    name: str = "test-graph",
) -> GraphSpec:
    """A graph from ``{name: type or {type, field...}}`` and ``(from, to[, label])`` edges.

    Nodes named "Start" and "End" default to the Start1 and End1 types.
    """
    built: list[GraphNode] = []
    for node_name, spec in nodes.items():
        fields: dict[str, Any] = {"type": spec} if isinstance(spec, str) else dict(spec)
        built.append(GraphNode(id=node_id(node_name), name=node_name, **fields))
    graph_edges = [
        GraphEdge(
            id=uuid5(NAMESPACE_URL, f"qm-test-edge/{i}"),
            source_id=node_id(e[0]),
            target_id=node_id(e[1]),
            label=e[2] if len(e) > 2 else "",  # type: ignore[misc]
        )
        for i, e in enumerate(edges)
    ]
    return GraphSpec(name=name, start_node_id=node_id(start), nodes=built, edges=graph_edges)


def chain(n: int, node_type: str = "step") -> GraphSpec:
    """Start -> n-2 nodes of ``node_type`` -> End."""
    names = ["Start", *(f"n{i}" for i in range(n - 2)), "End"]
    nodes: dict[str, str | dict[str, Any]] = {name: node_type for name in names[1:-1]}
    nodes = {"Start": NodeType.START.value, **nodes, "End": NodeType.END.value}
    return build(nodes, list(itertools.pairwise(names)))


@dataclass
class Call:
    """One executor call as the executor saw it."""

    node: str
    visit: int
    attempt: int
    input_text: str
    user_input: str | None
    started: float
    context: ExecutionContext


@dataclass
class Trace:
    """Registers executors that record every call, and collects events."""

    calls: list[Call] = field(default_factory=list)
    events: list[FlowEvent] = field(default_factory=list)
    registry: SimpleNodeRegistry = field(default_factory=SimpleNodeRegistry)

    def record(self, ctx: ExecutionContext) -> None:
        self.calls.append(
            Call(
                ctx.current_node.name,
                ctx.visit,
                ctx.attempt,
                ctx.input_text,
                ctx.user_input,
                time.monotonic(),
                ctx,
            )
        )

    def on(self, node_type: str, fn: Callable[[ExecutionContext], Any] | None = None) -> Trace:
        """An ``async def`` executor for ``node_type``: records the call, then returns
        ``fn(ctx)`` (awaited if a coroutine), or "<name>(<input>)" by default."""

        async def execute(ctx: ExecutionContext) -> NodeResult:
            self.record(ctx)
            if fn is None:
                return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")
            out = fn(ctx)
            if asyncio.iscoroutine(out):
                out = await out
            return out if isinstance(out, NodeResult) else NodeResult(output_text=str(out))

        self.registry.register(node_type, execute)
        return self

    def on_blocking(self, node_type: str, fn: Callable[[ExecutionContext], Any]) -> Trace:
        """A plain ``def`` executor for ``node_type`` (may block)."""

        def execute(ctx: ExecutionContext) -> NodeResult:
            self.record(ctx)
            out = fn(ctx)
            return out if isinstance(out, NodeResult) else NodeResult(output_text=str(out))

        self.registry.register(node_type, execute)
        return self

    def names(self) -> list[str]:
        return [c.node for c in self.calls]

    def count(self, name: str) -> int:
        return sum(1 for c in self.calls if c.node == name)

    def event_types(self) -> list[str]:
        return [e.type for e in self.events]

    def events_of(self, kind: type[FlowEvent]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]
