"""Store contracts.

`ExecutionStore` is 0.1.5's contract: per-node records, flow memory and message
histories. `DurableStore` adds what crash recovery, cross-process resume and
scale-out need: flow records, an atomic commit of one activation's outcome, the
queue of pending activations, listing, deletion and retention.

Every method may be written as ``def`` or ``async def``: the engine adapts to
either (see `StoreAdapter`). A store written only to `ExecutionStore`, such as
0.1.5's README ``RedisStore`` sketch, still works; flows on it cannot be
recovered after a crash or resumed from another process.

Async stores are called from whatever event loop runs the flow: ``run()`` from
a script uses a loop of the calling thread, ``run()`` inside a running loop uses
the engine's background loop, ``run_async()`` the caller's loop. A store that
holds loop-bound resources (connection pools) must keep them per loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from quartermaster_engine.context.node_execution import NodeExecution
from quartermaster_engine.stores.records import (
    Commit,
    FlowMove,
    FlowRecord,
    FlowSnapshot,
    FlowStatus,
    FlowUpdate,
    Lease,
    WindowAsk,
)
from quartermaster_engine.types import Message


@runtime_checkable
class ExecutionStore(Protocol):
    """0.1.5's store contract: records, memory and messages per flow.

    ``get_node_execution`` and ``get_all_node_executions`` answer with the
    latest record of each node; ``get_messages`` with the node's latest history.
    """

    def save_node_execution(self, flow_id: UUID, node_id: UUID, execution: NodeExecution) -> Any:
        """Persist a record of the node."""
        ...

    def get_node_execution(self, flow_id: UUID, node_id: UUID) -> Any:
        """The node's latest record, or None."""
        ...

    def get_all_node_executions(self, flow_id: UUID) -> Any:
        """``{node_id: latest record}`` for the flow."""
        ...

    def save_memory(self, flow_id: UUID, key: str, value: Any) -> Any:
        """Set a flow-memory value."""
        ...

    def get_memory(self, flow_id: UUID, key: str) -> Any:
        """A flow-memory value, or None."""
        ...

    def get_all_memory(self, flow_id: UUID) -> Any:
        """The flow's memory as a new dict."""
        ...

    def delete_memory(self, flow_id: UUID, key: str) -> Any:
        """Remove a flow-memory value (no error when absent)."""
        ...

    def save_messages(self, flow_id: UUID, node_id: UUID, messages: list[Message]) -> Any:
        """Replace the node's message history."""
        ...

    def get_messages(self, flow_id: UUID, node_id: UUID) -> Any:
        """The node's message history (a new list)."""
        ...

    def append_message(self, flow_id: UUID, node_id: UUID, message: Message) -> Any:
        """Append one message to the node's history."""
        ...

    def clear_flow(self, flow_id: UUID) -> Any:
        """Remove everything stored for the flow."""
        ...


@runtime_checkable
class DurableStore(ExecutionStore, Protocol):
    """The durable contract: flows that survive crashes and move between processes.

    ``commit`` must apply a `Commit` all or nothing, and commits of one flow in
    the order they are made. Conformance: `quartermaster_engine.testing`.

    Fencing: a flow is driven by at most one process at a time, the holder of
    its *lease* (`acquire_lease`). Each new holder gets a higher epoch; every
    commit and status update a driver makes carries its epoch, and the store
    refuses one whose epoch is not the flow's current one, so a driver that
    lost its lease (it was paused past the lease's end and another process took
    over) changes nothing. A commit whose activation is no longer pending is a
    duplicate and changes nothing either. Both raise without writing.

    Event log: the events a commit or update carries are appended to the flow's
    log in the same transaction; `read_events` reads them back from any process.
    """

    def create_flow(self, record: FlowRecord) -> Any:
        """Store a new flow; raise `FlowExistsError` if the id is taken."""
        ...

    def get_flow(self, flow_id: UUID) -> Any:
        """The `FlowRecord`, or None."""
        ...

    def update_flow(self, flow_id: UUID, update: FlowUpdate) -> Any:
        """Change the flow's status; a terminal status also drops its queue and joins.
        When ``update.epoch`` is set it is checked like a commit's (`StaleLeaseError`,
        `FlowEndedError` for an ended flow); ``update.events`` are appended to the log;
        ``update.release_lease`` ends the lease."""
        ...

    def commit(self, flow_id: UUID, commit: Commit) -> Any:
        """Apply one activation's outcome atomically, after checking, in the same
        transaction: the flow exists (else `FlowNotFoundError`) and has not ended,
        and ``commit.epoch`` (when set) is its lease epoch (else `StaleLeaseError`);
        ``commit.done`` (when set) is pending, with the attempt of
        ``commit.record`` (when set), and ``commit.answers`` (when set) is
        pending and waiting for input (else `DuplicateCommitError`). Adds one to
        the flow's ``version``."""
        ...

    def acquire_lease(
        self, flow_id: UUID, owner: str, ttl: float, *, take_over: int | None = None
    ) -> Any:
        """Make ``owner`` the flow's driver for ``ttl`` seconds and return the new
        `Lease` (epoch one higher than the last). Raises `LeaseHeldError` while
        another owner's lease has not run out, unless ``take_over`` is that
        lease's epoch (its holder is known to be dead); `FlowNotFoundError`."""
        ...

    def renew_lease(self, flow_id: UUID, epoch: int, ttl: float) -> Any:
        """Extend the lease of ``epoch`` by ``ttl`` seconds from now and return it;
        `StaleLeaseError` if the flow's lease is no longer that epoch."""
        ...

    def release_lease(self, flow_id: UUID, epoch: int) -> Any:
        """End the lease of ``epoch`` (nothing happens if it is no longer current)."""
        ...

    def read_events(self, flow_id: UUID, after: int = 0, limit: int | None = None) -> Any:
        """The flow's logged events numbered above ``after``, in order (at most
        ``limit``); empty for an unknown flow."""
        ...

    def load_flow(self, flow_id: UUID, *, records_after: int = 0) -> Any:
        """A `FlowSnapshot` of the flow read at one instant, or None; its records are
        those numbered above ``records_after`` (all by default)."""
        ...

    def list_flows(self, *, status: FlowStatus | None = None, limit: int | None = None) -> Any:
        """`FlowRecord`s, most recently updated first."""
        ...

    def delete_flow(self, flow_id: UUID) -> Any:
        """Remove the flow and everything stored for it; True if it existed."""
        ...

    def prune(self, older_than: timedelta) -> Any:
        """Delete ended flows last updated longer ago than ``older_than``; return how many."""
        ...


# -- optional abilities: declared protocols, checked with isinstance ----------------------


@runtime_checkable
class DescribesItself(Protocol):
    """A store that names itself in messages (``"sqlite /path/flows.db"``, a URL with
    its password masked); otherwise messages use its class name."""

    def describe(self) -> str: ...


@runtime_checkable
class KeepsPersistentMemory(Protocol):
    """A store that keeps per-agent `PersistentMemory` itself (it survives processes
    with a durable store); otherwise the engine keeps one in memory."""

    def persistent_memory(self) -> Any: ...


@runtime_checkable
class CountsRecords(Protocol):
    """A store that counts each flow's node records without reading them
    (``qm flows list``); the answer is ``{flow_id: count}``."""

    def record_counts(self, flow_ids: list[UUID]) -> Any: ...


@runtime_checkable
class FindsDueTimers(Protocol):
    """A store that finds paused flows whose timer is due, for the clock loop
    (`Engine.wake_due`; docs/time.md): ``due_timers(now, limit)`` returns the ids
    of flows whose status is paused and that have a pending activation whose
    ``not_before`` (a sleep, a retry delay, a wait's deadline) is set and at most
    ``now`` (earliest first, at most ``limit``). Without it flows never park on a
    timer (the process driving them waits for it) and deadlines fire only on
    `recover`."""

    def due_timers(self, now: float, limit: int) -> Any: ...


@runtime_checkable
class HoldsSlots(Protocol):
    """A store that keeps concurrency slots per key for every process sharing it
    (``[limits."<key>"] max_in_flight``; docs/limits.md). A slot is (key, holder): it
    is taken only while fewer than ``limit`` unexpired slots of the key are held
    (first come, first served: see `take_slot`), and lapses at ``expires_at``
    (seconds since the epoch) unless renewed, so a holder that died frees it
    within its ttl. Times are the callers' clocks. Without this
    ability the engine keeps slots within its process. Plain or ``async def``."""

    def take_slot(self, key: str, holder: str, limit: int, now: float, expires_at: float) -> Any:
        """Take a slot of ``key`` for ``holder`` in first-come order; returns 0 if taken
        (or held by ``holder`` already: its expiry moves to ``expires_at``), else
        ``holder``'s place in the key's line (1: next).

        The line is the key's waiters (`CountsWaiters`) that a refused ``take_slot``
        queued, ordered by a ticket the store gives each on its first refusal. In
        one atomic step: drop the key's slots and queued waiters expired at ``now``;
        take a slot if the slots held plus the waiters queued before ``holder`` (all
        of them when ``holder`` is not queued) are fewer than ``limit``, and take
        ``holder`` out of the line; else queue it (a new ticket) or keep its ticket,
        until ``expires_at``. A holder keeps its place by asking again before its
        mark expires (also from another process: the place belongs to the id).
        Waiters recorded by ``mark_waiting`` are counted but not in the line. With
        ``limit`` 0 no slot is ever taken: ``holder`` is queued (or keeps its place)
        and its place returned (a window's line: `runner.window_line`)."""
        ...

    def renew_slot(self, key: str, holder: str, expires_at: float) -> Any:
        """Move the holder's slot's expiry; False if it has none (it lapsed)."""
        ...

    def release_slot(self, key: str, holder: str) -> Any:
        """Give the holder's slot up (nothing if it has none)."""
        ...

    def slots_in_use(self, now: float) -> Any:
        """``{key: slots held and unexpired at now}`` for every key with one."""
        ...


@runtime_checkable
class ReleasesSlotsInCommit(Protocol):
    """A store that `HoldsSlots` and whose `commit` gives up `Commit.release_slots`
    in the same write as the rest of an accepted commit (docs/limits.md): a limited
    activation then costs one store round trip for its slot (taking it), not two. A
    refused commit releases nothing (the engine then calls `release_slot`)."""

    def releases_slots_in_commit(self) -> bool:
        """Whether this store's commits apply ``release_slots`` now (False, e.g., on
        a Redis Cluster node, whose scripts may not span the slots' keys: the engine
        then releases each slot after the commit)."""
        ...


@runtime_checkable
class LimitsRate(Protocol):
    """A store that counts the starts of each limit key in a sliding window for every
    process sharing it (``[limits."<key>"] max_requests``, ``per``; docs/limits.md).
    Times are the callers' clocks. Without this ability the engine counts within its
    process. Plain or ``async def``."""

    def take_request(self, key: str, limit: int, per: float, now: float) -> Any:
        """Count a start of ``key`` at ``now`` if fewer than ``limit`` were counted in
        the ``per`` seconds before (those at or before ``now - per`` are dropped) and
        return 0.0; else count nothing and return the seconds until one leaves."""
        ...

    def requests_in_window(self, key: str, per: float, now: float) -> Any:
        """How many starts of ``key`` were counted in the ``per`` seconds before ``now``."""
        ...


@runtime_checkable
class LimitsTokens(Protocol):
    """A store that sums the LLM tokens each limit key used in a sliding window for
    every process sharing it (``[limits."<key>"] max_tokens``, ``per``;
    docs/limits.md). Times are the callers' clocks. Without this ability the engine
    counts within its process. Plain or ``async def``.

    Its `DurableStore.commit` applies the commit's ``key_tokens`` (`TokenCount`: as
    `add_tokens` would) with the rest of the commit, all or nothing: a refused commit
    counts nothing."""

    def add_tokens(self, key: str, tokens: int, now: float, per: float) -> Any:
        """Count ``tokens`` used by ``key`` at ``now`` (and drop the key's counts at or
        before ``now - per``, which no window asks for any more)."""
        ...

    def tokens_in_window(self, key: str, per: float, now: float) -> Any:
        """``[(at, tokens), ...]`` of ``key`` counted in the ``per`` seconds before
        ``now``, oldest first (`quartermaster_engine.runner.key_limits.tokens_wait`
        turns them into the wait before another activation may start)."""
        ...


@runtime_checkable
class KeepsWindowLines(Protocol):
    """A store whose window checks (`LimitsRate`, `LimitsTokens`) keep the window's line
    themselves, in the same atomic step (docs/limits.md, "Starts per window"): a
    newcomer with waiters ahead of it joins the line instead of taking freed room.

    The line is a `HoldsSlots` line named ``ask.line`` (``<key> (window)``,
    `runner.window_line.line_of`): the waiters ``take_slot`` queues, by ticket. Each
    method (its ask a `WindowAsk`), in one step: drops the line's waiters expired at
    ``wall``; counts the waiters queued before ``waiter`` (all of them when it is not
    queued); when none is, asks the window at ``now`` (the engine's clock) and, if it
    has room, lets ``waiter`` start (``take_request`` counts the start) and takes it
    out of the line; else queues ``waiter`` (a new ticket) or keeps its ticket, until
    ``expires_at`` (wall time). Returns ``(place, wait)``: ``(0, 0.0)`` when it may
    start, else its place in the line (1: first) and, when first, the seconds until
    the window has room (0.0 behind others). Plain or ``async def``."""

    def take_request_in_line(self, ask: WindowAsk) -> Any:
        """`LimitsRate.take_request` in ``ask.line``'s order: ``(place, wait)``."""
        ...

    def take_tokens_in_line(self, ask: WindowAsk, leave: bool) -> Any:
        """Whether fewer than ``ask.limit`` tokens of ``ask.key`` are in its window (as
        `LimitsTokens.tokens_in_window` and `runner.window_line.tokens_wait` tell), in
        the line's order: ``(place, wait)``. With ``leave`` False a waiter let start
        keeps its place (a starts window of the same line is asked next)."""
        ...


@runtime_checkable
class KeepsKeyUsage(Protocol):
    """A store that adds up what the activations of each budget key used, across flows,
    for every process sharing it (``[budgets."<key>"]``; docs/limits.md): node runs,
    LLM tokens and cost, added once per accepted commit. Without this ability each
    process adds up its own. Plain or ``async def``.

    Its `DurableStore.commit` applies the commit's ``key_usage`` (`UsageCount`: as
    `add_key_usage` would) with the rest of the commit, all or nothing: a refused
    commit adds nothing."""

    def add_key_usage(self, key: str, node_runs: int, tokens: int, cost: float) -> Any:
        """Add to ``key``'s totals (a key not seen before starts at zero)."""
        ...

    def keys_usage(self, keys: Sequence[str]) -> Any:
        """``[(node_runs, tokens, cost), ...]`` of each of ``keys``, in order (zeros for
        a key not seen): one read for all of them."""
        ...

    def key_usages(self) -> Any:
        """``{key: (node_runs, tokens, cost)}`` of every key with usage."""
        ...


@runtime_checkable
class CountsWaiters(Protocol):
    """A store that records the activations waiting for a limit key (for a slot, or
    for room in its window of starts) for every process sharing it, so ``qm limits``
    shows how many wait (docs/limits.md). A waiter is (key, waiter) and lapses at
    ``expires_at`` unless marked again, like a slot, so a waiter that died stops
    counting within its ttl. Times are the callers' clocks. Without this ability
    each process counts its own waiters. Plain or ``async def``."""

    def mark_waiting(self, key: str, waiter: str, now: float, expires_at: float) -> Any:
        """Drop the key's waiters expired at ``now``, then record (or renew) ``waiter``
        as waiting for ``key`` until ``expires_at``."""
        ...

    def unmark_waiting(self, key: str, waiter: str) -> Any:
        """The waiter waits no more (nothing if it was not recorded)."""
        ...

    def waiting_counts(self, now: float) -> Any:
        """``{key: waiters recorded and unexpired at now}`` for every key with one."""
        ...


@runtime_checkable
class KeepsSchedules(Protocol):
    """A store that keeps schedules (`schedules.Schedule`; docs/time.md):

    - ``add_schedule(schedule)``: store it; `ScheduleExistsError` if its name is taken;
    - ``list_schedules()``: every schedule, by name;
    - ``remove_schedule(name)``: True if it existed;
    - ``claim_tick(name, tick, next_tick)``: a compare-and-set that sets the
      schedule's next tick to ``next_tick`` only if it is still ``tick``; True
      if this call moved it. Of any number of clocks claiming one tick, exactly
      one gets True: that one starts the tick's flow."""

    def add_schedule(self, schedule: Any) -> Any: ...

    def list_schedules(self) -> Any: ...

    def remove_schedule(self, name: str) -> Any: ...

    def claim_tick(self, name: str, tick: float, next_tick: float) -> Any: ...


@runtime_checkable
class ReadsChanges(Protocol):
    """A store that says what changed of a flow since a version without reading its
    frontier (`quartermaster_engine.stores.changes`): ``read_changes(flow_id, after,
    records_after=n)`` returns a `FlowChanges` read at one instant (the flow's
    record, its records numbered above ``n``, and the frontier change of each
    commit after version ``after``, or None in place of those when it does not
    hold them all), or None for an unknown flow. The store keeps the change of
    every commit whose ``keep_change`` is set, in the commit's own write, at
    least the latest `KEPT_CHANGES` of a flow, and drops them with the flow's
    queue when it ends. A `FlowStepper` uses it to bring a cached state up to
    date when another process committed in between; without it, it reads the
    frontier whole (`load_flow`)."""

    def read_changes(self, flow_id: UUID, after: int, *, records_after: int = 0) -> Any: ...


@runtime_checkable
class MovesFlows(Protocol):
    """A store that moves a flow to another graph (`Engine.migrate`;
    docs/history.md#migration): ``move_flow(flow_id, move)`` replaces the flow's
    stored graph with ``move.graph`` and appends ``move.events`` (``event_seq``
    becomes the last one's number) in one write, checked in that write with
    `fencing.check_move`: refused (`StaleLeaseError`) unless the flow's lease epoch
    is ``move.epoch`` and its status ``move.status``; `FlowNotFoundError` for an
    unknown flow. Nothing else of the flow changes."""

    def move_flow(self, flow_id: UUID, move: FlowMove) -> Any: ...


@runtime_checkable
class Closeable(Protocol):
    """A store (or dispatcher, sink) that holds connections, threads or files and
    releases them in ``close()`` (plain or ``async``)."""

    def close(self) -> Any: ...


class StoreError(RuntimeError):
    """A store could not do what was asked."""


class ScheduleExistsError(StoreError):
    """A schedule of that name is already stored."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a schedule named {name!r} already exists; remove it first")
        self.name = name


class StoreDataError(StoreError, ValueError):
    """A value cannot be stored (for example output data that is not JSON).

    Raised by a store's ``commit``; the runner then fails the flow naming the
    node, since running it again would produce the same data.
    """


class LeaseHeldError(StoreError):
    """Another process holds the flow's lease and it has not run out."""

    def __init__(self, message: str, lease: Lease) -> None:
        super().__init__(message)
        self.lease = lease


class StaleLeaseError(StoreError):
    """A commit or update was made under a lease epoch that is no longer the
    flow's, or for a flow that has ended; nothing was written."""


class FlowEndedError(StaleLeaseError):
    """A commit or update for a flow that has ended (``status``: completed, failed or
    stopped, perhaps by another process); nothing was written."""

    def __init__(self, message: str, status: FlowStatus) -> None:
        super().__init__(message)
        self.status = status


class DuplicateCommitError(StoreError):
    """The commit's activation is no longer pending (it was committed already), or
    the node it answers is no longer waiting; nothing was written."""


class FlowExistsError(StoreError):
    """A flow with this id is already stored."""


class FlowNotFoundError(StoreError, LookupError):
    """No flow with this id is stored."""


__all__ = [
    "Commit",
    "DuplicateCommitError",
    "DurableStore",
    "ExecutionStore",
    "FindsDueTimers",
    "FlowEndedError",
    "FlowExistsError",
    "FlowNotFoundError",
    "FlowRecord",
    "FlowSnapshot",
    "FlowStatus",
    "FlowUpdate",
    "HoldsSlots",
    "KeepsKeyUsage",
    "KeepsSchedules",
    "KeepsWindowLines",
    "Lease",
    "LeaseHeldError",
    "LimitsRate",
    "ReleasesSlotsInCommit",
    "ScheduleExistsError",
    "StaleLeaseError",
    "StoreDataError",
    "StoreError",
]
