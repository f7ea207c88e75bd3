"""`FlowResult`: what a run, resume or recover returns."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus
from quartermaster_engine.nodes import NodeResult
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_graph.models import CAPTURE_AS, GraphSpec


@dataclass(frozen=True, slots=True)
class WaitingNode:
    """A node waiting for a person's answer."""

    node_id: UUID
    node_name: str
    prompt: str
    options: list[str]
    visit: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``qm run --json``, qm-server)."""
        return {
            "node_id": str(self.node_id),
            "node_name": self.node_name,
            "prompt": self.prompt,
            "options": list(self.options),
            "visit": self.visit,
        }


class NodeResults(Mapping[UUID, NodeResult]):
    """``{node_id: NodeResult}`` of each node's latest activation, built on first access."""

    def __init__(self, records: Iterable[NodeExecution | None]) -> None:
        self._records = records
        self._built: dict[UUID, NodeResult] | None = None

    def _build(self) -> dict[UUID, NodeResult]:
        if self._built is None:
            self._built = {
                rec.node_id: NodeResult(
                    success=rec.status in (NodeStatus.FINISHED, NodeStatus.SKIPPED),
                    data=rec.output_data,
                    error=rec.error,
                    output_text=rec.result,
                    wait_for_user=rec.status is NodeStatus.WAITING_USER,
                )
                for rec in self._records
                if rec is not None
            }
        return self._built

    def __getitem__(self, key: UUID) -> NodeResult:
        return self._build()[key]

    def __iter__(self) -> Iterator[UUID]:
        return iter(self._build())

    def __len__(self) -> int:
        return len(self._build())

    def __repr__(self) -> str:
        return f"NodeResults({len(self)} nodes)"


class Captures(Mapping[str, NodeResult]):
    """``{name: NodeResult}`` of the nodes whose metadata ``capture_as`` names them
    (the builder's ``capture_as=`` keyword), for those that ran; built on first access."""

    def __init__(self, graph: GraphSpec, results: Mapping[UUID, NodeResult]) -> None:
        self._graph = graph
        self._results = results
        self._built: dict[str, NodeResult] | None = None

    def _build(self) -> dict[str, NodeResult]:
        if self._built is None:
            built: dict[str, NodeResult] = {}
            for node in self._graph.nodes:
                name = node.metadata.get(CAPTURE_AS)
                if isinstance(name, str) and name and node.id in self._results:
                    built[name] = self._results[node.id]
            self._built = built
        return self._built

    def __getitem__(self, name: str) -> NodeResult:
        return self._build()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._build())

    def __len__(self) -> int:
        return len(self._build())

    def __repr__(self) -> str:
        return f"Captures({sorted(self._build())})"


@dataclass
class FlowResult:
    """The outcome of a flow: ``status`` is completed, failed, paused or stopped.

    ``success`` is True only for a completed flow in which no node failed.
    ``final_output`` is the output the End node received ("" if no End node
    ran); ``output_data`` its data. ``error`` names the failed node and its
    error. ``waiting`` lists the nodes a paused flow waits on; ``wakes_at`` is
    when a paused flow's first timer is due (a sleep, a retry delay; a Unix time
    by the engine's clock), None without one. ``captures`` maps
    the ``capture_as`` name of each node that ran to its `NodeResult`;
    ``result["name"]`` reads one.
    """

    flow_id: UUID
    success: bool
    final_output: str = ""
    output_data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    node_results: Mapping[UUID, NodeResult] = field(default_factory=dict)
    duration_seconds: float = 0.0
    status: FlowStatus = FlowStatus.COMPLETED
    waiting: list[WaitingNode] = field(default_factory=list)
    captures: Mapping[str, NodeResult] = field(default_factory=dict)
    wakes_at: float | None = None

    def __getitem__(self, name: str) -> NodeResult:
        """The result of the node captured as ``name``; KeyError listing the names."""
        try:
            return self.captures[name]
        except KeyError:
            known = ", ".join(repr(n) for n in sorted(self.captures)) or "none"
            raise KeyError(
                f"no node captured as {name!r} ran in flow {self.flow_id}; captured: {known}"
            ) from None

    @property
    def paused(self) -> bool:
        """True when the flow waits for input."""
        return self.status is FlowStatus.PAUSED
