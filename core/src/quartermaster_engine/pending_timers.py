"""`pending_timers`: the timers a stored flow waits on, read from its pending
activations (``not_before``): a Sleep1's wake time, a retry's next attempt, a
wait's deadline. One rule for ``qm flows show`` and qm-server's flow JSON."""

from __future__ import annotations

from typing import Any

from quartermaster_engine.control_nodes import iso
from quartermaster_engine.stores.records import FlowSnapshot
from quartermaster_graph.enums import NodeType
from quartermaster_graph.models import type_name

#: What each kind of timer does when due, as ``qm flows show`` and the page say it.
TIMER_VERBS = {"sleep": "sleeps until", "retry": "retries at", "deadline": "times out at"}


def pending_timers(snapshot: FlowSnapshot) -> list[dict[str, Any]]:
    """One entry per pending activation with a timer: ``node`` (its name),
    ``kind`` (``deadline`` for a node waiting for a person, ``sleep``
    for a Sleep1, else ``retry``), ``wakes_at`` (Unix time) and ``wakes_at_iso``."""
    nodes = {n.id: n for n in snapshot.flow.graph.nodes}
    timers = []
    for act in snapshot.pending:
        if not act.not_before:
            continue
        node = nodes.get(act.node_id)
        if act.waiting:
            kind = "deadline"
        elif node is not None and type_name(node.type) == NodeType.SLEEP.value:
            kind = "sleep"
        else:
            kind = "retry"
        timers.append(
            {
                "node": node.name if node is not None else str(act.node_id),
                "kind": kind,
                "wakes_at": act.not_before,
                "wakes_at_iso": iso(act.not_before),
            }
        )
    return timers


__all__ = ["TIMER_VERBS", "pending_timers"]
