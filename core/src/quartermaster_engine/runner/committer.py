"""Writing one flow's outcomes to its store.

Durable stores get one `Commit` per outcome, stamped with the driver's lease
epoch and carrying the events emitted since the last commit; stores with only
0.1.5's contract get the record, history and memory writes one by one. Store
failures become the runner's errors: data the store cannot keep fails the
flow, a refused (stale or duplicate) commit means another process has the
flow, anything else leaves the flow to be recovered.

An executed activation's concurrency slots (`held_slots.HeldSlots`) are handed over
to its commit (`hand_over`): a store that `ReleasesSlotsInCommit` gives them up in
the commit's own write (``Commit.release_slots``), other stores right after it; a
refused or failed commit, or none, releases them with calls of their own.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from uuid import UUID

from quartermaster_engine.runner.compiled import CompiledGraph
from quartermaster_engine.runner.emitter import Emitter
from quartermaster_engine.runner.errors import (
    LeaseLostError,
    StoppedElsewhereError,
    StoreUnavailableError,
    UnstorableOutputError,
    error_text,
)
from quartermaster_engine.runner.lease import LeaseKeeper
from quartermaster_engine.stores.adapter import StoreAdapter
from quartermaster_engine.stores.base import (
    DuplicateCommitError,
    FlowEndedError,
    StaleLeaseError,
    StoreDataError,
)
from quartermaster_engine.stores.records import (
    Activation,
    ActivationKey,
    Commit,
    FlowStatus,
    FlowUpdate,
)

if TYPE_CHECKING:
    from quartermaster_engine.runner.held_slots import HeldSlots


class Committer:
    """Commits one flow's outcomes under its lease."""

    __slots__ = (
        "cg",
        "commits",
        "durable",
        "emitter",
        "enqueued",
        "flow_id",
        "held_slots",
        "keep_changes",
        "lease",
        "store",
        "store_name",
        "sync",
    )

    def __init__(
        self,
        store: StoreAdapter,
        store_name: str,
        flow_id: UUID,
        compiled: CompiledGraph,
        emitter: Emitter,
        lease: LeaseKeeper,
    ) -> None:
        self.store = store
        self.store_name = store_name
        self.flow_id = flow_id
        self.cg = compiled
        self.emitter = emitter
        self.lease = lease
        self.durable = store.durable
        #: The store's commit never suspends: callers may use `commit_now`.
        self.sync = store.commit_is_sync
        #: Commits this committer wrote (each adds one to the flow's version).
        self.commits = 0
        #: The activations its commits queued, once `collect_enqueued` asked for them
        #: (a stepper reports them; a flow driven here would only pile them up).
        self.enqueued: list[Activation] | None = None
        #: Mark commits ``keep_change`` (a stepper's runs: it reads changes back).
        self.keep_changes = False
        #: The slots handed over, by the activation whose commit gives them back.
        self.held_slots: dict[ActivationKey, HeldSlots] | None = None

    def _stamp(self, commit: Commit) -> None:
        commit.epoch = self.lease.epoch
        if self.keep_changes:
            commit.keep_change = True
        if self.emitter.unlogged:
            commit.events = self.emitter.take_unlogged()

    def hand_over(self, key: ActivationKey, slots: HeldSlots) -> None:
        """Keep ``slots`` (activation ``key``'s, its executor done) for its commit (a
        stepper's `execute` takes them back for the commit `complete` writes)."""
        slots.handed = True
        if self.held_slots is None:
            self.held_slots = {}
        self.held_slots[key] = slots

    def take_held(self, key: ActivationKey) -> HeldSlots | None:
        """Take activation ``key``'s handed-over slots for a commit written elsewhere
        (`FlowStepper.complete`), renewed until it gives them back."""
        held = self.held_slots.pop(key, None) if self.held_slots else None
        if held is not None:
            held.keep_renewing()
        return held

    async def release_held(self, key: ActivationKey) -> None:
        """Give back activation ``key``'s slots if no commit took them (it wrote none)."""
        held = self.held_slots.pop(key, None) if self.held_slots else None
        if held is not None:
            await held.release()

    async def commit(self, commit: Commit) -> None:
        """Write ``commit``; raises the runner's errors (see the module)."""
        held, done = self.held_slots, commit.done
        if held and done is not None and done in held:
            await self._commit_releasing(commit, held.pop(done))
            return
        if self.sync:
            self.commit_now(commit)
            return
        if not self.durable:
            await self._legacy(commit)
            return
        self._stamp(commit)
        try:
            await self.store.commit(self.flow_id, commit)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise self.failure(exc, commit) from exc
        self._written(commit)

    async def _commit_releasing(self, commit: Commit, slots: HeldSlots) -> None:
        """`commit`, giving ``slots`` back: in the commit when the store can, else (or
        when the commit was refused or failed) with a store call each after it."""
        in_commit = slots.limits.in_commit()
        if in_commit:
            commit.release_slots = slots.pairs()
        try:
            await self.commit(commit)
        except BaseException:
            await slots.release()
            raise
        if in_commit:
            slots.given_back()
        else:
            await slots.release()

    def commit_now(self, commit: Commit) -> None:
        """`commit` for stores whose commit never suspends: no coroutine on the hot path."""
        self._stamp(commit)
        try:
            self.store.commit_now(self.flow_id, commit)
        except Exception as exc:
            raise self.failure(exc, commit) from exc
        self._written(commit)

    def collect_enqueued(self) -> list[Activation]:
        """From now on, keep the activations each commit queues; the list they go to."""
        self.enqueued = []
        return self.enqueued

    def _written(self, commit: Commit) -> None:
        self.commits += 1
        if self.enqueued is not None:
            self.enqueued.extend(commit.enqueue)

    async def update(self, update: FlowUpdate) -> None:
        """Change the flow's status under the lease, with the events not yet logged."""
        update.epoch = self.lease.epoch
        update.events = self.emitter.take_unlogged()
        update.event_seq = self.emitter.seq
        try:
            await self.store.update_flow(self.flow_id, update)
        except StaleLeaseError as exc:
            raise self.failure(exc, Commit()) from exc

    def failure(self, exc: Exception, commit: Commit) -> Exception:
        """The runner's error for a store's refusal or failure of ``commit``."""
        if isinstance(exc, FlowEndedError) and exc.status is FlowStatus.STOPPED:
            return StoppedElsewhereError(str(exc))
        if isinstance(exc, StaleLeaseError | DuplicateCommitError):
            return LeaseLostError(str(exc))
        if isinstance(exc, StoreDataError) and commit.record is not None:
            cnode = self.cg.by_id.get(commit.record.node_id)
            node = cnode.describe() if cnode is not None else str(commit.record.node_id)
            return UnstorableOutputError(
                f"node {node} produced data the store ({self.store_name}) cannot save: {exc}"
            )
        return StoreUnavailableError(
            f"the store ({self.store_name}) failed while committing flow {self.flow_id}: "
            f"{error_text(exc)}"
        )

    async def _legacy(self, commit: Commit) -> None:
        """0.1.5-contract stores: write the record, memory and history node by node."""
        rec = commit.record
        store = self.store
        try:
            if rec is not None:
                await store.save_node_execution(self.flow_id, rec.node_id, rec)
                if rec.log is not None:
                    await store.save_messages(self.flow_id, rec.node_id, rec.log.to_list())
            if commit.memory:
                for key, value in commit.memory.items():
                    await store.save_memory(self.flow_id, key, value)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise self.failure(exc, commit) from exc
