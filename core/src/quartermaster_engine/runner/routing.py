"""Routing: what one committed outcome enables next.

Given a node's outcome, the `Router` decides which edges deliver, which carry
dead signals, which join slots fill or fire, which loops end, and which
activations are queued, and writes all of it into the outcome's `Commit`. It
does no I/O: it reads and updates the routing state of `FlowState` (visit
counters, join slots, loop activity) and nothing else.

Joins. A delivery along a forward edge goes to the oldest open join slot of
its target that has not yet received that edge, or opens a new slot. An
AwaitAll node fires when every forward incoming edge has delivered to the
slot, live or dead; an AwaitFirst node fires on the slot's first live delivery
and absorbs the rest. A node whose slot completes with dead deliveries only is
dead itself and passes dead signals on. A delivery along a back edge always
starts a new visit of its target. Dead signals on a loop's exit edges are held
until the loop has nothing in flight, because until then the exit may still be
taken (see `compiled`).
"""

from __future__ import annotations

from collections import deque

from quartermaster_engine.context.node_execution import NodeExecution
from quartermaster_engine.runner.compiled import (
    OUT_ALL,
    OUT_LATE,
    OUT_NONE,
    OUT_PICKED,
    OUT_START,
    CEdge,
    CNode,
    CompiledGraph,
)
from quartermaster_engine.runner.join_slot import DEAD, MISSING, JoinSlot
from quartermaster_engine.runner.state import FlowState
from quartermaster_engine.stores.records import Activation, Commit, Delivery


class Router:
    """Routing over one flow's state. ``limit_error`` is set (node, message) when a
    node would pass its visit limit; the caller fails the flow with it."""

    __slots__ = ("cg", "dead", "in_child", "limit_error", "max_visits", "state")

    def __init__(
        self,
        compiled: CompiledGraph,
        state: FlowState,
        max_visits: int | None,
        in_child: bool = False,
    ) -> None:
        self.cg = compiled
        self.state = state
        self.max_visits = max_visits
        #: A sub-graph's flow: Back1 returns to the parent instead of looping.
        self.in_child = in_child
        self.limit_error: tuple[CNode, str] | None = None
        #: Nodes that routing found dead (they will not run this visit), until
        #: the caller reports them (`take_dead`).
        self.dead: list[CNode] = []

    def route(
        self,
        cnode: CNode,
        rec: NodeExecution,
        commit: Commit,
        picked: CEdge | None,
        *,
        failed: bool = False,
    ) -> None:
        """Deliver ``rec`` along the edges its node's traverse_out selects."""
        mode = cnode.out_mode
        dead: list[CEdge] = []
        if mode == OUT_ALL:
            for edge in cnode.out_edges:
                self._deliver(edge, rec, commit)
        elif mode == OUT_PICKED:
            # A failed decision (SKIP/CONTINUE) has no answer: every branch is dead.
            for edge in cnode.out_edges:
                if edge is picked and not failed:
                    self._deliver(edge, rec, commit)
                elif not edge.back:
                    dead.append(edge)
        elif mode == OUT_START:
            dead.extend(e for e in cnode.out_edges if not e.back)
            if not (cnode.is_back and self.in_child):
                self._deliver(self.cg.start_edges[cnode.idx], rec, commit)
        elif mode == OUT_NONE:
            dead.extend(e for e in cnode.out_edges if not e.back)
        elif mode == OUT_LATE:
            # A wait with a deadline edge: answered, every edge but the deadline's
            # ones; passed (``picked``: `deadlines.fire_due`), that edge only.
            late = cnode.node.metadata["on_timeout_edge"]
            for edge in cnode.out_edges:
                if edge is picked if picked is not None else edge.label != late:
                    self._deliver(edge, rec, commit)
                elif not edge.back:
                    dead.append(edge)
        if dead:
            self._propagate_dead(dead, commit)

    def settle(self, cnode: CNode, commit: Commit) -> None:
        """``cnode``'s activation has ended: leave its loops, and end every loop that
        has nothing left in flight (their untaken exits are dead now)."""
        state = self.state
        if cnode.loops:
            state.leave_loops(cnode)
        touched = state.touched
        while touched:
            loop = self.cg.loops[touched.pop()]
            if state.loop_active[loop.idx]:
                continue
            live = state.loop_live[loop.idx]
            untaken = [e for e in loop.exits if e.idx not in live]
            live.clear()
            commit.add_loop_reset(loop.header.node_id)
            for edge in untaken:
                self._propagate_dead([edge], commit, resolving=True)

    def fire_start(self) -> Activation:
        """The first visit of the start node."""
        start = self.cg.start
        self.state.visits[start.idx] = 1
        self.state.enter_loops(start)
        return Activation._engine(start.node_id, 1, start, ())

    def _deliver(self, edge: CEdge, rec: NodeExecution, commit: Commit) -> None:
        """A live delivery along ``edge``."""
        target = edge.target
        if edge.back:
            self._fire(target, (rec,), commit)
            return
        exit_loop = edge.exit_loop
        if exit_loop is not None:
            live = self.state.loop_live[exit_loop.idx]
            if edge.idx not in live:
                live.add(edge.idx)
                commit.add_loop_exit(exit_loop.header.node_id, edge.id)
        if target.n_in_fwd == 1:
            self._fire(target, (rec,), commit)
            return
        slot = self._slot_for(target, edge)
        slot.receive(edge.in_pos, rec)
        commit.add_delivery(Delivery(target.node_id, slot.no, edge.id, (rec.node_id, rec.visit)))
        if target.await_all:
            if slot.count == target.n_in_fwd:
                self._close(target, slot, commit)
                self._fire(target, tuple(r for r in slot.got if r is not None), commit)
        else:
            if not slot.fired:
                slot.fired = True
                self._fire(target, (rec,), commit)
            if slot.count == target.n_in_fwd:
                self._close(target, slot, commit)

    def _propagate_dead(
        self, edges: list[CEdge], commit: Commit, *, resolving: bool = False
    ) -> None:
        """Dead signals along ``edges`` and onward, iteratively (chains can be long)."""
        work = list(edges)
        while work:
            edge = work.pop()
            if edge.back:
                continue
            if edge.exit_loop is not None and not resolving:
                continue  # held until the loop has nothing in flight
            resolving = False  # only the resolved exit edges themselves bypass the hold
            target = edge.target
            if target.n_in_fwd == 1:
                self._kill(target, work)
                continue
            slot = self._slot_for(target, edge)
            slot.receive(edge.in_pos, DEAD)
            commit.add_delivery(Delivery(target.node_id, slot.no, edge.id, None))
            if slot.count == target.n_in_fwd:
                self._close(target, slot, commit)
                if slot.live == 0:
                    self._kill(target, work)
                elif target.await_all:
                    # The last edge is dead but others delivered: fire with those.
                    self._fire(target, tuple(r for r in slot.got if r is not None), commit)

    def take_dead(self) -> list[CNode]:
        """The nodes found dead since the last call."""
        dead = self.dead
        if dead:
            self.dead = []
        return dead

    def _kill(self, cnode: CNode, work: list[CEdge]) -> None:
        """A node that will not run this visit: its successors hear it will not deliver."""
        self.dead.append(cnode)
        for loop in cnode.loops:
            self.state.touched.add(loop.idx)
        work.extend(e for e in cnode.out_edges if not e.back)

    def _slot_for(self, target: CNode, edge: CEdge) -> JoinSlot:
        state = self.state
        slots = state.joins.get(target.idx)
        if slots is None:
            slots = state.joins[target.idx] = deque()
        pos = edge.in_pos
        for slot in slots:
            if slot.got[pos] is MISSING:
                return slot
        no = state.slot_seq[target.idx] = state.slot_seq.get(target.idx, 0) + 1
        slot = JoinSlot(no, target.n_in_fwd)
        slots.append(slot)
        return slot

    def _close(self, target: CNode, slot: JoinSlot, commit: Commit) -> None:
        joins = self.state.joins
        slots = joins[target.idx]
        slots.remove(slot)
        if not slots:
            del joins[target.idx]
        commit.add_closed(target.node_id, slot.no)

    def _fire(self, cnode: CNode, sources: tuple[NodeExecution, ...], commit: Commit) -> None:
        state = self.state
        visit = state.visits[cnode.idx] + 1
        limit = cnode.max_visits if cnode.max_visits is not None else self.max_visits
        if limit is not None and visit > limit:
            if self.limit_error is None:
                self.limit_error = (
                    cnode,
                    f"node {cnode.describe()} exceeded its visit limit of {limit}",
                )
            return
        state.visits[cnode.idx] = visit
        if cnode.loops:
            state.enter_loops(cnode)
        commit.add_enqueue(Activation._engine(cnode.node_id, visit, cnode, sources))


def stalled_join(compiled: CompiledGraph, state: FlowState) -> str | None:
    """Why the flow cannot go on although nothing failed: an AwaitAll join that got
    some of its inputs but will never get the rest. None if there is none."""
    for idx, slots in state.joins.items():
        target = compiled.nodes[idx]
        for slot in slots:
            if target.await_all and slot.live and not slot.fired:
                missing = [
                    e.source.name or str(e.source.node_id)
                    for e in target.in_fwd
                    if slot.got[e.in_pos] is MISSING
                ]
                got = [
                    e.source.name or str(e.source.node_id)
                    for e in target.in_fwd
                    if slot.got[e.in_pos] is not MISSING
                ]
                return (
                    f"node {target.describe()} waited for all its inputs: "
                    f"{', '.join(got)} delivered but {', '.join(missing)} never did"
                )
    return None
