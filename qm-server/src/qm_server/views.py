"""The JSON the API answers with: graphs, flows, node runs and events."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from qm_server.event_source import Position, position_text
from quartermaster_engine.budgets import BudgetsConfig, flow_usage
from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus
from quartermaster_engine.events import FlowEvent
from quartermaster_engine.pending_timers import pending_timers
from quartermaster_engine.runner import FlowResult, WaitingNode
from quartermaster_engine.stores.records import FlowRecord, FlowSnapshot
from quartermaster_graph.enums import NodeType
from quartermaster_graph.models import GraphNode, GraphSpec

#: How the page colours a node, from its latest record.
NODE_STATES = {
    NodeStatus.PENDING: "pending",
    NodeStatus.RUNNING: "running",
    NodeStatus.WAITING_USER: "waiting",
    NodeStatus.WAITING_TOOL: "waiting",
    NodeStatus.FINISHED: "finished",
    NodeStatus.FAILED: "failed",
    NodeStatus.SKIPPED: "skipped",
    NodeStatus.CANCELLED: "cancelled",
}


def _type_name(node: GraphNode) -> str:
    return node.type.value if isinstance(node.type, NodeType) else str(node.type)


def graph_view(name: str | None, spec: GraphSpec) -> dict[str, Any]:
    """A graph as the page draws it: nodes (id, name, type) and edges."""
    return {
        "name": name,
        "title": spec.name,
        "start_node_id": str(spec.start_node_id),
        "nodes": [
            {"id": str(node.id), "name": node.name, "type": _type_name(node)} for node in spec.nodes
        ],
        "edges": [
            {
                "source": str(edge.source_id),
                "target": str(edge.target_id),
                "label": edge.label or "",
            }
            for edge in spec.edges
        ],
    }


def flow_summary(record: FlowRecord) -> dict[str, Any]:
    """A flow in a listing."""
    return {
        "flow_id": str(record.flow_id),
        "graph": record.graph.name,
        "status": record.status.value,
        "input": record.input,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "error": record.error,
        "output": record.final_output,
        "parent_flow_id": None if record.parent_flow_id is None else str(record.parent_flow_id),
    }


def _run_view(record: NodeExecution, names: dict[UUID, tuple[str, str]]) -> dict[str, Any]:
    name, node_type = names.get(record.node_id, ("?", "?"))
    return {
        "node_id": str(record.node_id),
        "node_name": name,
        "node_type": node_type,
        "visit": record.visit,
        "attempt": record.attempt,
        "status": NODE_STATES.get(record.status, record.status.value),
        "started": record.started,
        "finished": record.finished,
        "duration_seconds": record.duration_seconds,
        "output": record.result,
        "error": record.error,
        "user_input": record.user_input,
        "memory_updates": record.output_data.get("memory_updates") or {},
        "inputs": [
            {
                "node_id": str(node_id),
                "node_name": names.get(node_id, ("?", "?"))[0],
                "visit": visit,
            }
            for node_id, visit in record.inputs
        ],
        "messages": [{"role": m.role.value, "content": m.content} for m in record.messages],
    }


def flow_view(
    snapshot: FlowSnapshot,
    *,
    running_here: bool,
    budgets: BudgetsConfig | None = None,
    key_usage: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One flow: its record, every node run, what waits, each node's state, and its
    usage (node runs, tokens, cost priced by ``budgets``: `quartermaster_engine.budgets`),
    its budget keys' totals across flows (``key_usage``: `KeyBudgets.graph_usage`; None
    without key budgets) and its timers (a sleep's wake time, a retry's next attempt, a
    wait's deadline: `quartermaster_engine.pending_timers`).

    A node with no run in an ended flow is ``dead`` (no path reached it).
    """
    record = snapshot.flow
    spec = record.graph
    names = {node.id: (node.name, _type_name(node)) for node in spec.nodes}
    # A user node's activation is recorded when it starts waiting and again when its
    # answered run ends: show each activation once, as it stands now.
    latest: dict[tuple[UUID, int, int], NodeExecution] = {}
    for run in snapshot.records:
        key = (run.node_id, run.visit, run.attempt)
        known = latest.get(key)
        if known is None or (run.started or 0.0) >= (known.started or 0.0):
            latest[key] = run
    runs = sorted(latest.values(), key=lambda r: (r.started or 0.0, r.visit, r.attempt))
    states: dict[str, str] = {}
    for run in runs:
        states[str(run.node_id)] = NODE_STATES.get(run.status, run.status.value)
    if record.status.is_terminal:
        for node in spec.nodes:
            states.setdefault(str(node.id), "dead")
    waiting = [
        WaitingNode(
            act.node_id,
            names.get(act.node_id, ("?", "?"))[0],
            act.prompt,
            act.options or [],
            act.visit,
        ).to_dict()
        for act in snapshot.pending
        if act.waiting and act.child_flow is None  # (not a sub-graph node on a fleet)
    ]
    for item in waiting:
        states[item["node_id"]] = "waiting"
    return {
        **flow_summary(record),
        "event_seq": record.event_seq,
        "running_here": running_here,
        "graph_view": graph_view(None, spec),
        "node_states": states,
        "runs": [_run_view(run, names) for run in runs],
        "waiting": waiting,
        "memory": snapshot.memory,
        "usage": flow_usage(snapshot.records, budgets).to_dict(),
        "key_usage": key_usage,
        "timers": pending_timers(snapshot),
    }


def result_view(result: FlowResult) -> dict[str, Any]:
    """What a waiting start or resume answers: the run's result."""
    return {
        "flow_id": str(result.flow_id),
        "status": result.status.value,
        "success": result.success,
        "output": result.final_output,
        "error": result.error,
        "waiting": [w.to_dict() for w in result.waiting],
    }


def sse_frame(position: Position, event: FlowEvent) -> bytes:
    """One server-sent event: ``id`` is the event's position (``N``, or ``N.k`` for
    the k-th token after event N; see `event_source`), ``event`` its type."""
    ident = position_text(position)
    return f"id: {ident}\nevent: {event.type}\ndata: {event.to_json()}\n\n".encode()
