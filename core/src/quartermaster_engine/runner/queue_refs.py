"""The queue of a flow's state as dispatchers see it: activations named by
`ActivationRef` (node id, visit, attempt), found and taken out by that name
(`FlowStepper`'s bookkeeping of work executed elsewhere)."""

from __future__ import annotations

import heapq
import time
from uuid import UUID

from quartermaster_engine.runner.state import FlowState
from quartermaster_engine.stores.records import Activation

#: A pending activation as dispatchers name it: (node id, visit, attempt).
ActivationRef = tuple[UUID, int, int]


def queued(state: FlowState) -> list[tuple[ActivationRef, float]]:
    """Every activation that may run, with when it may start."""
    out = [((a.node_id, a.visit, a.attempt), 0.0) for a in state.ready]
    out.extend(((a.node_id, a.visit, a.attempt), due) for due, _, a in state.timers)
    return out


def enqueued(enqueued: list[Activation]) -> tuple[tuple[ActivationRef, float], ...]:
    """What commits queued that may run (not waiting for a person), each once, with
    when it may start: read from the commits, not from the whole queue."""
    now = time.time()
    out: dict[ActivationRef, float] = {}
    for a in enqueued:
        if not a.waiting:
            out[(a.node_id, a.visit, a.attempt)] = a.not_before if a.not_before > now else 0.0
    return tuple(out.items())


def find(state: FlowState, ref: ActivationRef) -> Activation | None:
    node_id, visit, attempt = ref
    for act in state.ready:
        if act.node_id == node_id and act.visit == visit and act.attempt == attempt:
            return act
    for _, _, act in state.timers:
        if act.node_id == node_id and act.visit == visit and act.attempt == attempt:
            return act
    return None


def take(state: FlowState, act: Activation) -> None:
    """Take ``act`` out of the queue: it ran, its outcome is being committed."""
    for i, queued in enumerate(state.ready):
        if queued is act:
            del state.ready[i]
            return
    state.timers[:] = [t for t in state.timers if t[2] is not act]
    heapq.heapify(state.timers)
