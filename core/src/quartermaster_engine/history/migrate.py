"""`migrate`: move a paused (waiting for a person or sleeping on a timer) or failed
flow to a new version of its graph, in one fenced write under the flow's lease.

The flow keeps its records, memory, queue, join deliveries and loop marks; only
its stored graph changes, to the new graph aligned to the old one's ids
(`alignment`). Before that, every node the flow would still run must have a node
in the new graph (`check_paused`, `check_failed`); otherwise the flow is refused
with an error naming the node. See docs/history.md#migration.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from uuid import UUID

from quartermaster_engine.context.node_execution import NodeStatus
from quartermaster_engine.events import FlowEdited, FlowMigrated
from quartermaster_engine.history.alignment import Alignment, MigrationRefused, align, mapping_arg
from quartermaster_engine.history.checkpoints import timeline
from quartermaster_engine.history.held import Held, held, read_flow
from quartermaster_engine.history.replay import Replay
from quartermaster_engine.runner.compiled import CompiledGraph
from quartermaster_engine.runner.errors import FlowStateError
from quartermaster_engine.stores.base import FlowNotFoundError, StaleLeaseError
from quartermaster_engine.stores.graphs import graph_digest
from quartermaster_engine.stores.records import FlowMove, FlowSnapshot, FlowStatus
from quartermaster_engine.types import GraphSpec

if TYPE_CHECKING:
    from quartermaster_engine.runner.engine import Engine

#: The statuses a flow may be migrated in.
MOVABLE = (FlowStatus.PAUSED, FlowStatus.FAILED)
MIGRATED = "migrated"
REFUSED = "refused"
WOULD_MIGRATE = "would-migrate"


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What `migrate` did with one flow: ``outcome`` is ``migrated``, ``refused``
    (``reason`` says why, ``error`` names the error class) or ``would-migrate``
    (a dry run); ``mapping``: each old node name -> its node in the new graph."""

    flow_id: UUID
    outcome: str
    reason: str = ""
    error: str = ""
    mapping: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (``qm flows migrate --json``)."""
        return {
            "flow_id": str(self.flow_id),
            "outcome": self.outcome,
            "reason": self.reason,
            "error": self.error,
            "mapping": dict(self.mapping),
        }

    @property
    def refused(self) -> bool:
        return self.outcome == REFUSED

    def line(self) -> str:
        """One line for ``qm flows migrate``."""
        if self.refused:
            return f"{self.flow_id} refused: {self.reason}"
        moved = [f"{a}={b}" for a, b in self.mapping.items() if a != b]
        tail = f" ({', '.join(moved)})" if moved else ""
        verb = "would migrate" if self.outcome == WOULD_MIGRATE else "migrated"
        return f"{self.flow_id} {verb}{tail}"


async def migrate(
    engine: Engine,
    flow_id: UUID,
    to: GraphSpec,
    mapping: Mapping[str, str] | None = None,
    dry_run: bool = False,
) -> MigrationReport:
    """Move the flow to ``to`` (see the module); a refusal is a report, not an error.
    A malformed ``mapping`` (or one naming a node ``to`` lacks) is a `ValueError`."""
    if not isinstance(to, GraphSpec):
        raise ValueError(f"to must be a GraphSpec, got {type(to).__name__}")
    names = mapping_arg(mapping, to)
    engine.preflight(engine.compiled_for(to))
    try:
        if dry_run:
            snapshot, events = await read_flow(engine, flow_id, "migrating a flow")
            aligned = _checked(engine, Held(snapshot, events, 0), to, names)
            return MigrationReport(flow_id, WOULD_MIGRATE, mapping=aligned.names)
        async with held(engine, flow_id, "migrating a flow") as flow:
            aligned = _checked(engine, flow, to, names)
            record = flow.snapshot.flow
            now = time.time()
            event = FlowMigrated(
                flow_id=flow_id,
                seq=record.event_seq + 1,
                ts=now,
                from_graph=graph_digest(record.graph),
                to_graph=graph_digest(aligned.graph),
                graph_name=aligned.graph.name,
                mapping=aligned.names,
                dropped={str(n.id): n.name for n in record.graph.nodes if n.id not in aligned.kept},
            )
            move = FlowMove(aligned.graph, record.status, flow.epoch, now, [event])
            await engine.store_adapter.move_flow(flow_id, move)
            return MigrationReport(flow_id, MIGRATED, mapping=aligned.names)
    except (FlowStateError, FlowNotFoundError, StaleLeaseError) as exc:
        return MigrationReport(flow_id, REFUSED, str(exc), type(exc).__name__)


def _checked(engine: Engine, flow: Held, to: GraphSpec, names: dict[str, str]) -> Alignment:
    """The aligned graph, once the flow's state is found to fit it."""
    if not engine.store_adapter.moves_flows:
        raise FlowStateError(
            f"{engine.store_name()} cannot move flows to another graph (no move_flow)"
        )
    snapshot = flow.snapshot
    record = snapshot.flow
    if record.status not in MOVABLE:
        raise FlowStateError(
            f"flow {record.flow_id} is {record.status.value}; only a paused (waiting for "
            "input or on a timer) or failed flow can be migrated"
        )
    aligned = align(record.graph, to, names, record.flow_id)
    compiled = engine.compiled_for(aligned.graph)
    if record.status is FlowStatus.PAUSED:
        check_paused(snapshot, aligned, compiled)
    else:
        check_failed(engine, flow, aligned, compiled)
    return aligned


def _name(snapshot: FlowSnapshot, node_id: UUID) -> str:
    for node in snapshot.flow.graph.nodes:
        if node.id == node_id:
            return node.name
    return str(node_id)


def _no_node(snapshot: FlowSnapshot, node_id: UUID, what: str, to: GraphSpec) -> MigrationRefused:
    name = _name(snapshot, node_id)
    return MigrationRefused(
        f"node {name!r} of flow {snapshot.flow.flow_id} ({what}) has no node in the new "
        f"graph {to.name!r}; name one with --map {name}=NEW"
    )


def check_paused(snapshot: FlowSnapshot, aligned: Alignment, cg: CompiledGraph) -> None:
    """Every pending activation's node and every open join's node has a node in the
    new graph; each join's deliveries arrive on edges the new graph has, and each
    input it still lacks comes from a node that a pending node reaches there. (Loop
    marks of loops the new graph lacks are ignored when the flow is restored.)"""
    fid = snapshot.flow.flow_id
    for act in snapshot.pending:
        if act.node_id not in aligned.kept:
            what = "waiting for input" if act.waiting else "queued"
            if act.not_before and not act.waiting:
                what = "sleeping on a timer"
            raise _no_node(snapshot, act.node_id, what, aligned.graph)
    reach = _reached(cg, [act.node_id for act in snapshot.pending])
    slots: dict[tuple[UUID, int], set[UUID]] = {}
    live: set[tuple[UUID, int]] = set()
    for delivery in snapshot.deliveries:
        slots.setdefault((delivery.target, delivery.slot), set()).add(delivery.edge)
        if delivery.source is not None:
            live.add((delivery.target, delivery.slot))
    for (target, slot), edges in slots.items():
        if target not in aligned.kept:
            raise _no_node(snapshot, target, "a join with inputs delivered", aligned.graph)
        cnode = cg.by_id[target]
        for edge_id in edges:
            edge = cg.edge_by_id.get(edge_id)
            if edge is None or edge.target is not cnode or edge.back:
                raise MigrationRefused(
                    f"join node {cnode.name!r} of flow {fid} got an input on an edge the new "
                    f"graph {aligned.graph.name!r} does not have ({_edge(snapshot, edge_id)})"
                )
        if not cnode.await_all and (target, slot) in live:
            continue  # an AwaitFirst join that fired: it waits for nothing more
        for edge in cnode.in_fwd:
            if edge.id not in edges and edge.source.idx not in reach:
                raise MigrationRefused(
                    f"join node {cnode.name!r} of flow {fid} would wait forever in the new "
                    f"graph {aligned.graph.name!r}: no pending node reaches its input "
                    f"{edge.source.name!r}"
                )


def check_failed(engine: Engine, flow: Held, aligned: Alignment, cg: CompiledGraph) -> None:
    """A failed flow is retried by replaying its records through its graph: every
    node that has a record needs a node in the new graph, and the replay must pass."""
    snapshot = flow.snapshot
    for rec in snapshot.records:
        if rec.node_id not in aligned.kept:
            what = "failed" if rec.status is NodeStatus.FAILED else "ran"
            raise _no_node(snapshot, rec.node_id, f"{what}; a retry replays it", aligned.graph)
    replay = Replay(cg, snapshot, flow.asked, engine.max_visits)
    replay.start()
    for item in timeline(snapshot.records, flow.edits):
        if not isinstance(item, FlowEdited):
            replay.step(item)


def _reached(cg: CompiledGraph, starts: list[UUID]) -> set[int]:
    """Indexes of the nodes reachable from ``starts`` (themselves included)."""
    todo = [cg.by_id[s] for s in starts if s in cg.by_id]
    seen = {c.idx for c in todo}
    while todo:
        for edge in todo.pop().out_edges:
            if edge.target.idx not in seen:
                seen.add(edge.target.idx)
                todo.append(edge.target)
    return seen


def _edge(snapshot: FlowSnapshot, edge_id: UUID) -> str:
    for edge in snapshot.flow.graph.edges:
        if edge.id == edge_id:
            return f"{_name(snapshot, edge.source_id)} -> {_name(snapshot, edge.target_id)}"
    return str(edge_id)


__all__ = ["MIGRATED", "MOVABLE", "REFUSED", "WOULD_MIGRATE", "MigrationReport", "migrate"]
