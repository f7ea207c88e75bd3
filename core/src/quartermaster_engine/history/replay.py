"""`Replay`: the commits that made a flow what it is, rebuilt from its records.

A store keeps every record a flow committed but only the *current* frontier
(pending activations, open join slots, loop marks), and drops even that when
the flow ends. Forks (the frontier at any checkpoint) and retries (the frontier
of a failed flow) need it back. The record of an activation says what it did,
so running the flow's own `Router` over the records in commit order, exactly as
the runner did when it committed them, gives every commit again, and the
frontier after any of them.

Two things a record does not say are read from elsewhere: which branch a
decision picked (the edge to the node that later received the record: from
the flow's later records, or its pending activations and join deliveries), and
what a node waiting for a person asked (its `UserInputRequired` event).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus
from quartermaster_engine.events import UserInputRequired
from quartermaster_engine.runner.compiled import OUT_PICKED, CEdge, CNode, CompiledGraph
from quartermaster_engine.runner.deadlines import took_deadline_edge
from quartermaster_engine.runner.errors import FlowStateError
from quartermaster_engine.runner.join_slot import MISSING
from quartermaster_engine.runner.map_state import MapRun, after_item, first_items, map_run
from quartermaster_engine.runner.routing import Router
from quartermaster_engine.runner.state import FlowState
from quartermaster_engine.stores.records import (
    Activation,
    ActivationKey,
    Commit,
    Delivery,
    FlowSnapshot,
)
from quartermaster_graph.enums import ErrorStrategy

#: How a map's item ends: finished, or skipped (failed under ``skip``/``collect``).
_ITEM_ENDS = (NodeStatus.FINISHED, NodeStatus.SKIPPED)


class ReplayError(FlowStateError):
    """A flow's records cannot be replayed (the message names the node and why)."""


def memory_updates(rec: NodeExecution) -> dict[str, Any] | None:
    """The flow-memory values a record's commit wrote: a finished node's
    ``memory_updates`` (the runner commits no other record's)."""
    if rec.status is not NodeStatus.FINISHED:
        return None
    data = rec.output_data
    updates = data.get("memory_updates") if data else None
    return updates if isinstance(updates, dict) and updates else None


class Replay:
    """Replays one flow's records (see the module). Feed records in commit order
    to `step`; `pending`, `failed` and the routing `state` are the frontier after
    the last one."""

    def __init__(
        self,
        compiled: CompiledGraph,
        snapshot: FlowSnapshot,
        asked: Iterable[UserInputRequired] = (),
        max_visits: int | None = None,
    ) -> None:
        flow = snapshot.flow
        self.cg = compiled
        self.flow_id = flow.flow_id
        self.state = FlowState(compiled, flow.flow_id, flow.input)
        self.router = Router(compiled, self.state, max_visits)
        #: Activations pending now, by (node, visit).
        self.pending: dict[ActivationKey, Activation] = {}
        #: Activations that failed for good under STOP (what a retry runs again).
        self.failed: list[Activation] = []
        self._by_key: dict[ActivationKey, NodeExecution] = {}
        self._received = receivers(snapshot)
        self._asked: dict[UUID, list[UserInputRequired]] = defaultdict(list)
        for event in asked:
            self._asked[event.node_id].append(event)
        self._parked: dict[UUID, int] = defaultdict(int)

    def start(self) -> Commit:
        """The commit that queues the start node's first visit."""
        act = self.router.fire_start()
        self.pending[act.key] = act
        return Commit(enqueue=[act])

    def step(self, rec: NodeExecution) -> list[Commit]:
        """The commits of one record: its own, after the answer that let a waiting
        node run again (when it was waiting)."""
        cnode = self.cg.by_id.get(rec.node_id)
        if cnode is None:
            raise ReplayError(
                f"flow {self.flow_id} has a record of node {rec.node_id}, not in its graph"
            )
        key = rec.key
        act = self.pending.get(key)
        commits: list[Commit] = []
        if act is None:
            act = self._retried(rec)
            if act is not None:  # `retry` queued the failed activation again
                self.pending[key] = act
                commits.append(Commit(enqueue=[act]))
        if act is None:
            raise ReplayError(
                f"flow {self.flow_id}: node {cnode.describe()} visit {rec.visit} ran "
                "without being queued; its records cannot be replayed"
            )
        act.sources = tuple(self._by_key[k] for k in act.inputs)
        act.cnode = cnode
        if act.waiting and (rec.status is not NodeStatus.WAITING_USER or rec.user_input):
            answered = copy_activation(act, waiting=False, user_input=rec.user_input)
            self.pending[key] = act = answered
            commits.append(Commit(enqueue=[answered], answers=key))
        commits.append(self._commit(cnode, act, rec))
        prev = self._by_key.get(key)
        if prev is None or rec.attempt >= prev.attempt:
            self._by_key[key] = rec
        return commits

    def _retried(self, rec: NodeExecution) -> Activation | None:
        """The next attempt of an activation that failed for good, if ``rec`` is it."""
        for i, act in enumerate(self.failed):
            if act.key == rec.key and act.attempt + 1 == rec.attempt:
                del self.failed[i]
                return copy_activation(act, attempt=rec.attempt)
        return None

    def _commit(self, cnode: CNode, act: Activation, rec: NodeExecution) -> Commit:
        status = rec.status
        key = act.key
        router = self.router
        if status is NodeStatus.WAITING_USER:
            asked = self._asked[cnode.node_id]
            n = self._parked[cnode.node_id]
            self._parked[cnode.node_id] = n + 1
            event = asked[n] if n < len(asked) else None
            waiting = copy_activation(act, waiting=True, user_input=None)
            waiting.prompt = event.prompt if event is not None else ""
            waiting.options = list(event.options) if event is not None and event.options else None
            self.pending[key] = waiting
            return Commit(record=rec, enqueue=[waiting])
        if status is NodeStatus.CANCELLED:
            return Commit(record=rec)  # the activation stays pending
        if status is NodeStatus.RUNNING:
            # Parked on a fleet child (`outcomes.park_on_child`): the activation stays
            # pending, not waiting, so that a fork's node runs again and starts a
            # child of its own (the original's child wakes only the original); the
            # run after the wake is the record that follows.
            return Commit(record=rec)
        if status is NodeStatus.SLEEPING:  # a Sleep1's timer (`outcomes.sleep`)
            wake_at = float(rec.output_data["wake_at"])
            woken = copy_activation(act, waiting=False, user_input=repr(wake_at))
            woken.not_before = wake_at
            self.pending[key] = woken
            return Commit(record=rec, enqueue=[woken])
        del self.pending[key]
        commit = Commit(key, rec)
        strategy = cnode.error_mode
        if cnode.map is not None and status is NodeStatus.MAPPING:  # a map started
            mapped = MapRun(cnode.map, rec, act.sources)
            self.state.maps[(cnode.idx, rec.visit)] = mapped
            commit.enqueue = first_items(self.state, mapped)
            router.settle(cnode, commit)
        elif cnode.item_of is not None and status in _ITEM_ENDS:  # a map's item ended
            mapped = map_run(self.state, act)
            index = mapped.index_of(rec.visit)
            commit.memory = memory_updates(rec)
            commit.enqueue = after_item(self.state, mapped, index, rec)
            router.settle(cnode, commit)
        elif status is NodeStatus.FINISHED:
            commit.memory = memory_updates(rec)
            picked = (
                self._picked(cnode, rec)
                if cnode.out_mode == OUT_PICKED
                else took_deadline_edge(cnode, rec)
            )
            router.route(cnode, rec, commit, picked)
            router.settle(cnode, commit)
        elif status is NodeStatus.FAILED and (
            strategy is ErrorStrategy.RETRY and rec.attempt <= cnode.max_retries
        ):
            commit.enqueue = [copy_activation(act, attempt=rec.attempt + 1)]
        elif status is NodeStatus.SKIPPED or strategy is ErrorStrategy.CONTINUE:
            router.route(cnode, rec, commit, None, failed=True)
            router.settle(cnode, commit)
        else:  # failed for good: the flow halted here
            self.state.leave_loops(cnode)
            self.failed.append(act)
        for new in commit.enqueue:
            self.pending[new.key] = new
        return commit

    def _picked(self, cnode: CNode, rec: NodeExecution) -> CEdge:
        """The edge a decision took: the one to the node that received its record."""
        receivers = self._received.get(rec.key, ())
        for edge in cnode.out_edges:
            if edge.target.node_id in receivers:
                return edge
        # No node received it: the branch led into an AwaitFirst join that had
        # fired already, which absorbs a live delivery exactly as a dead one.
        for edge in cnode.out_edges:
            if self._absorbs(edge):
                return edge
        raise ReplayError(
            f"flow {self.flow_id}: cannot tell which branch node {cnode.describe()} picked "
            f"in visit {rec.visit}: no node it picked ran or waits to run"
        )

    def _absorbs(self, edge: CEdge) -> bool:
        """Whether a delivery along ``edge`` would go to a fired AwaitFirst slot."""
        target = edge.target
        if edge.back or target.await_all or target.n_in_fwd < 2:
            return False
        for slot in self.state.joins.get(target.idx, ()):
            if slot.got[edge.in_pos] is MISSING:
                return slot.fired
        return False

    # -- the frontier ------------------------------------------------------------------

    def deliveries(self) -> list[Delivery]:
        """The open join slots' deliveries, as a store keeps them."""
        out: list[Delivery] = []
        for idx, slots in self.state.joins.items():
            target = self.cg.nodes[idx]
            for slot in slots:
                for edge in target.in_fwd:
                    got = slot.got[edge.in_pos]
                    if got is MISSING:
                        continue
                    source = None if got is None else (got.node_id, got.visit)
                    out.append(Delivery(target.node_id, slot.no, edge.id, source))
        return out

    def loop_exits(self) -> list[tuple[UUID, UUID]]:
        """The exit edges that delivered in each loop's current run."""
        return [
            (loop.header.node_id, self.cg.edges[idx].id)
            for loop in self.cg.loops
            for idx in sorted(self.state.loop_live[loop.idx])
        ]


def receivers(snapshot: FlowSnapshot) -> dict[ActivationKey, set[UUID]]:
    """Activation -> the nodes its output reached (records, queue, join deliveries)."""
    received: dict[ActivationKey, set[UUID]] = defaultdict(set)
    for rec in snapshot.records:
        for key in rec.inputs:
            received[key].add(rec.node_id)
    for act in snapshot.pending:
        for key in act.inputs:
            received[key].add(act.node_id)
    for delivery in snapshot.deliveries:
        if delivery.source is not None:
            received[delivery.source].add(delivery.target)
    return received


def copy_activation(
    act: Activation,
    *,
    attempt: int | None = None,
    waiting: bool | None = None,
    user_input: Any = MISSING,
) -> Activation:
    """A copy of ``act`` with the fields given changed (runtime fields kept)."""
    new = Activation(
        act.node_id,
        act.visit,
        act.attempt if attempt is None else attempt,
        act.inputs,
        waiting=act.waiting if waiting is None else waiting,
        prompt=act.prompt,
        options=act.options,
        user_input=act.user_input if user_input is MISSING else user_input,
    )
    new.cnode = act.cnode
    new.sources = act.sources
    return new


def replay_all(replay: Replay, records: Sequence[NodeExecution]) -> list[Commit]:
    """Every commit of ``records`` (after the start commit), in order."""
    commits: list[Commit] = []
    for rec in records:
        commits.extend(replay.step(rec))
    return commits


__all__ = ["Replay", "ReplayError", "copy_activation", "memory_updates", "receivers", "replay_all"]
