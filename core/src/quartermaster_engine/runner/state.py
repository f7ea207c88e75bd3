"""`FlowState`: one flow's progress as this process holds it, a cache of what
the store holds (the truth, for durable stores): the ready queue and retry
timers, nodes waiting for a person, each node's latest record, flow memory, and
the routing state (visits, open join slots, loop activity) `routing` reads and
updates. `restore` builds it from a `FlowSnapshot`, `catch_up` from what changed
since (`FlowChanges`); `apply` applies a committed `Commit`.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from quartermaster_engine.budgets import BudgetsConfig, new_usage
from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus
from quartermaster_engine.messaging.history import rebuild_log
from quartermaster_engine.runner.compiled import CNode, CompiledGraph
from quartermaster_engine.runner.errors import FlowStateError
from quartermaster_engine.runner.join_slot import DEAD, JoinSlot
from quartermaster_engine.runner.map_state import (
    MapRun,
    note_not_pending,
    note_pending,
    note_record,
)
from quartermaster_engine.stores.changes import FlowChanges
from quartermaster_engine.stores.records import (
    Activation,
    ActivationKey,
    Commit,
    Delivery,
    FlowSnapshot,
    FlowStatus,
)


class FlowState:
    """What one flow has done and may do next, as held in this process."""

    def __init__(
        self,
        compiled: CompiledGraph,
        flow_id: UUID,
        input_text: str,
        now: Callable[[], float] = time.time,
        budgets: BudgetsConfig | None = None,
    ) -> None:
        self.cg = compiled
        #: The engine's clock (`quartermaster_engine.clock`): when timers are due.
        self.now = now
        #: The flow's usage, counted from its records when budgets are set (else None).
        self.usage = None if budgets is None else new_usage(budgets)
        self.flow_id = flow_id
        self.input = input_text
        n = len(compiled.nodes)
        self.memory: dict[str, Any] = {}
        self._snapshot: dict[str, Any] | None = None
        #: The thread that may cache memory snapshots (the flow's loop thread).
        self.loop_thread = 0
        # Routing state.
        self.visits = [0] * n
        self.slot_seq: dict[int, int] = {}
        self.joins: dict[int, deque[JoinSlot]] = {}
        self.loop_active = [0] * len(compiled.loops)
        self.loop_live: list[set[int]] = [set() for _ in compiled.loops]
        self.touched: set[int] = set()
        # The queue.
        self.ready: deque[Activation] = deque()
        self.timers: list[tuple[float, int, Activation]] = []
        self._timer_seq = 0
        self.waiting: dict[ActivationKey, Activation] = {}
        #: Activations parked until their child flow pauses or ends (`fleet_children`).
        self.children: dict[ActivationKey, Activation] = {}
        # Records: the latest of each node (by node index) and the End node's.
        self.latest: list[NodeExecution | None] = [None] * n
        self.end_record: NodeExecution | None = None
        #: Final node failures, in the order they happened.
        self.failures: list[tuple[CNode, str]] = []
        #: A restored failed flow's error when no record says it (a budget, a visit limit).
        self.stored_error: str | None = None
        self.records_by_key: dict[ActivationKey, NodeExecution] = {}
        #: How many of the flow's records this state has read.
        self.record_count = 0
        # The latest record of each (node, visit) that failed: final failures
        # unless the activation is pending again (a retry).
        self._failed: dict[ActivationKey, tuple[CNode, str]] = {}
        #: Runs of Map1 nodes whose items are running, by (node index, visit).
        self.maps: dict[tuple[int, int], MapRun] = {}

    # -- memory ------------------------------------------------------------------

    def memory_snapshot(self) -> dict[str, Any]:
        """A copy of flow memory, shared by every context until the next write.

        Only the loop's thread caches it: a worker thread copying while the loop
        commits a write could otherwise cache a copy older than that write.
        """
        snap = self._snapshot
        if snap is None:
            snap = dict(self.memory)
            if threading.get_ident() == self.loop_thread:
                self._snapshot = snap
        return snap

    # -- the queue ---------------------------------------------------------------

    def add_timer(self, act: Activation) -> None:
        self._timer_seq += 1
        heapq.heappush(self.timers, (act.not_before, self._timer_seq, act))

    def release_due_timers(self) -> None:
        now = self.now()
        timers = self.timers
        while timers and timers[0][0] <= now:
            self.ready.append(heapq.heappop(timers)[2])

    def enter_loops(self, cnode: CNode) -> None:
        for loop in cnode.loops:
            self.loop_active[loop.idx] += 1

    def leave_loops(self, cnode: CNode) -> None:
        for loop in cnode.loops:
            self.loop_active[loop.idx] -= 1
            self.touched.add(loop.idx)

    @property
    def idle(self) -> bool:
        """No work for any worker: nothing ready, on a timer or in a child flow."""
        return not self.ready and not self.timers and not self.children

    @property
    def untouched(self) -> bool:
        """Nothing ever ran or was queued (the process died right after creating it)."""
        return (
            not self.ready
            and not self.timers
            and not self.waiting
            and not self.children
            and all(rec is None for rec in self.latest)
        )

    # -- applying commits ----------------------------------------------------------

    def apply(
        self,
        commit: Commit,
        cnode: CNode | None = None,
        rec: NodeExecution | None = None,
        *,
        failure: tuple[CNode, str] | None = None,
        leaves_loops: bool = False,
    ) -> None:
        """The one writer of an outcome's effects, called once the store accepted
        ``commit`` (without a durable store, in its place): memory, ``cnode``'s latest
        record ``rec``, an answered wait, the new work (ready, timers, waiting), a
        final ``failure``; ``leaves_loops``: ``cnode`` halted the flow inside loops."""
        if commit.memory:
            self.memory.update(commit.memory)
            self._snapshot = None
        if cnode is not None and rec is not None:
            self.latest[cnode.idx] = rec
            if self.usage is not None:
                self.usage.add(rec)
            if cnode.is_end and rec.status is NodeStatus.FINISHED:
                self.end_record = rec
            if leaves_loops:
                self.leave_loops(cnode)
        if failure is not None:
            self.failures.append(failure)
        if commit.answers is not None:
            self.waiting.pop(commit.answers, None)
            self.children.pop(commit.answers, None)
            for new in commit.enqueue:  # an approved budget runs every wait for it again
                if not new.waiting:
                    self.waiting.pop(new.key, None)
        for new in commit.enqueue:
            if new.waiting:
                self._wait(new)
            elif new.not_before:
                self.add_timer(new)
            else:
                self.ready.append(new)

    # -- restoring from the store ------------------------------------------------------

    def restore(self, snapshot: FlowSnapshot) -> None:
        """Build the state from what the store holds, or bring it up to date: the
        snapshot's records are added to those read before (a snapshot read with
        ``records_after`` holds only the new ones), everything else is replaced."""
        self.memory = dict(snapshot.memory)
        self._snapshot = None
        self._reset_frontier()
        usage = self.usage
        if usage is not None:
            usage.since = snapshot.flow.created_at
            if len(snapshot.records) == snapshot.record_count:
                usage.reset()  # every record is read again: count them anew
        self._add_records(snapshot.records)
        self.record_count = snapshot.record_count
        now = self.now()
        for act in snapshot.pending:
            self._queue_stored(act, now)
        self._final_failures({a.key for a in snapshot.pending} if self._failed else set())
        flow = snapshot.flow
        self.stored_error = flow.error if flow.status is FlowStatus.FAILED else None
        for delivery in sorted(snapshot.deliveries, key=lambda d: d.slot):
            self._receive_stored(delivery)
        self._mark_exits(snapshot.loop_exits)

    def catch_up(self, changes: FlowChanges) -> None:
        """Bring a state that is exactly what the store held at some version up to
        ``changes.flow.version`` from the records and frontier changes of the
        commits since (``changes.commits`` must be set): the state `restore` would
        build from a whole read then, without reading the frontier."""
        self._add_records(changes.records)
        self.record_count = changes.record_count
        # The queue's net change (the last word on each activation): what restore
        # sees. Joins, loop marks and memory change commit by commit, as stored.
        queue: dict[ActivationKey, Activation | None] = {}
        cg = self.cg
        assert changes.commits is not None
        for commit in changes.commits:
            if commit.memory:
                self.memory.update(commit.memory)
                self._snapshot = None
            if commit.done is not None:
                queue[commit.done] = None
            for delivery in commit.deliveries:
                self._receive_stored(delivery)
            for target_id, no in commit.closed:
                self._drop_slot(cg.by_id[target_id].idx, no)
            self._mark_exits(commit.loop_exits)
            for header_id in commit.loop_resets:
                loop = cg.loops_by_header.get(header_id)
                if loop is not None:
                    self.loop_live[loop.idx].clear()
            for new in commit.enqueue:
                queue[new.key] = new
        now = self.now()
        for key, act in queue.items():
            old = self._unqueue(key)
            if old is not None:
                for loop in old.cnode.loops:
                    self.loop_active[loop.idx] -= 1
                if old.cnode.item_of is not None:
                    note_not_pending(self, old)
            if act is not None:
                self._queue_stored(act, now)
        pending = {a.key for a in self.ready} if self._failed else set()
        self._final_failures(pending.union(self.waiting, self.children))
        flow = changes.flow
        self.stored_error = flow.error if flow.status is FlowStatus.FAILED else None

    def _queue_stored(self, act: Activation, now: float) -> None:
        """Queue a pending activation read from the store (restore, catch_up)."""
        cnode = self.cg.by_id.get(act.node_id)
        if cnode is None:
            raise FlowStateError(f"flow {self.flow_id} queues node {act.node_id}, not in graph")
        by_key = self.records_by_key
        act.cnode = cnode
        act.sources = tuple(by_key[k] for k in act.inputs)
        if act.visit > self.visits[cnode.idx]:
            self.visits[cnode.idx] = act.visit
        self.enter_loops(cnode)
        if cnode.item_of is not None:
            note_pending(self, act)
        if act.waiting:
            self._wait(act)
        elif act.not_before > now:
            self.add_timer(act)
        else:
            self.ready.append(act)

    def _unqueue(self, key: ActivationKey) -> Activation | None:
        """Take the pending activation ``key`` out of the queue; None if not queued."""
        act = self.waiting.pop(key, None) or self.children.pop(key, None)
        if act is not None:
            return act
        node_id, visit = key
        ready = self.ready
        for i, queued in enumerate(ready):
            if queued.visit == visit and queued.node_id == node_id:
                del ready[i]
                return queued
        for i, (_, _, queued) in enumerate(self.timers):
            if queued.visit == visit and queued.node_id == node_id:
                del self.timers[i]
                heapq.heapify(self.timers)
                return queued
        return None

    def _final_failures(self, pending: set[ActivationKey]) -> None:
        """Failed activations not pending again (for a retry) are final failures."""
        if self._failed:
            pending.update(a.key for _, _, a in self.timers)
        self.failures = [f for key, f in self._failed.items() if key not in pending]

    def _receive_stored(self, delivery: Delivery) -> None:
        """Count a join delivery read from the store (restore, catch_up): its slot
        is made (in slot order) if it is not open yet."""
        target = self.cg.by_id[delivery.target]
        edge = self.cg.edge_by_id[delivery.edge]
        slots = self.joins.get(target.idx)
        if slots is None:
            slots = self.joins[target.idx] = deque()
        slot = None
        at = len(slots)
        for i, open_slot in enumerate(slots):
            if open_slot.no == delivery.slot:
                slot = open_slot
                break
            if open_slot.no > delivery.slot:
                at = i
                break
        if slot is None:
            slot = JoinSlot(delivery.slot, target.n_in_fwd)
            slots.insert(at, slot)
            self.slot_seq[target.idx] = max(self.slot_seq.get(target.idx, 0), delivery.slot)
        source = DEAD if delivery.source is None else self.records_by_key[delivery.source]
        counted = slot.receive(edge.in_pos, source)
        if counted and source is not DEAD and not target.await_all:
            slot.fired = True  # an AwaitFirst join fired on its first live input

    def _drop_slot(self, idx: int, no: int) -> None:
        """A closed join slot (read from the store)."""
        slots = self.joins.get(idx, deque())
        for slot in [open_slot for open_slot in slots if open_slot.no == no]:
            slots.remove(slot)
        if not slots:
            self.joins.pop(idx, None)

    def _mark_exits(self, exits: Sequence[tuple[UUID, UUID]]) -> None:
        cg = self.cg
        for header_id, edge_id in exits:
            loop = cg.loops_by_header.get(header_id)
            exit_edge = cg.edge_by_id.get(edge_id)
            if loop is not None and exit_edge is not None:  # else: a loop a migration dropped
                self.loop_live[loop.idx].add(exit_edge.idx)

    def _wait(self, act: Activation) -> None:
        """``act`` waits: for a person, or for its child flow (kept apart)."""
        if act.child_flow is None:
            self.waiting[act.key] = act
        else:
            self.children[act.key] = act

    def _reset_frontier(self) -> None:
        """Forget the queue, joins and loop activity (the store's copy replaces them)."""
        self.ready.clear()
        self.timers.clear()
        self.waiting.clear()
        self.children.clear()
        self.joins.clear()
        self.slot_seq.clear()
        self.loop_active = [0] * len(self.cg.loops)
        for live in self.loop_live:
            live.clear()
        self.touched.clear()
        for run in self.maps.values():
            run.pending.clear()

    def _add_records(self, records: list[NodeExecution]) -> None:
        cg = self.cg
        by_key = self.records_by_key
        failed = self._failed
        usage = self.usage
        for rec in records:
            cnode = cg.by_id.get(rec.node_id)
            key = (rec.node_id, rec.visit)
            prev = by_key.get(key)
            if cnode is None:
                # A node its new graph dropped (a migrated flow, docs/history.md):
                # its records stay history, and inputs of what came after them.
                if prev is None or rec.attempt >= prev.attempt:
                    by_key[key] = rec
                if rec.log is None:
                    rec.log = rebuild_log(rec, by_key)
                continue
            if prev is None or rec.attempt >= prev.attempt:
                by_key[key] = rec
                if rec.status is NodeStatus.FAILED:
                    failed[key] = (cnode, rec.error or "failed")
                else:
                    failed.pop(key, None)
            if rec.visit > self.visits[cnode.idx]:
                self.visits[cnode.idx] = rec.visit
            self.latest[cnode.idx] = rec
            if usage is not None:
                usage.add(rec)
            if rec.log is None:
                rec.log = rebuild_log(rec, by_key)
            if cnode.map is not None or cnode.item_of is not None:
                note_record(self, cnode, rec)
            if cnode.is_end and rec.status is NodeStatus.FINISHED:
                self.end_record = rec
