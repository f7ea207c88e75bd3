"""The records a durable store keeps: flows, pending activations, join deliveries, commits.

They are plain objects with JSON-ready ``to_dict`` / ``from_dict`` forms, so a
store can persist them however it likes and a process that did not start a
flow can continue it from what the store holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple
from uuid import UUID

from quartermaster_engine.context.node_execution import NodeExecution
from quartermaster_engine.events import FlowEvent
from quartermaster_graph.models import GraphSpec

#: An activation within its flow: (node id, visit).
ActivationKey = tuple[UUID, int]


class FlowStatus(str, Enum):
    """Where a flow stands. `FlowResult.status` is never RUNNING."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    PAUSED = "paused"
    STOPPED = "stopped"

    @property
    def is_terminal(self) -> bool:
        """Whether the flow has ended (completed, failed or stopped)."""
        return self in TERMINAL


#: The statuses of an ended flow (`FlowStatus.is_terminal`).
TERMINAL = frozenset({FlowStatus.COMPLETED, FlowStatus.FAILED, FlowStatus.STOPPED})


def _key_to_json(key: ActivationKey) -> list[Any]:
    return [str(key[0]), key[1]]


def _key_from_json(data: list[Any]) -> ActivationKey:
    return (UUID(data[0]), int(data[1]))


#: A waiting activation whose ``user_input`` is this prefix and a flow id waits for
#: that child flow to pause or end (a sub-graph on a fleet, `runner.fleet_children`),
#: not for a person. (A waiting activation otherwise has no ``user_input``: the mark
#: lives in a field every store keeps already.)
CHILD_WAIT = "qm.child-flow:"


class Activation:
    """A pending run of a node: queued, waiting for a retry time, or waiting for a person.

    ``inputs`` are the activations whose outputs were delivered to it (empty for
    the first visit of the start node, which gets the flow input). Everything a
    worker needs to run it comes from these fields plus the store.
    """

    __slots__ = (
        "_inputs",
        "attempt",
        "cnode",
        "node_id",
        "not_before",
        "options",
        "prompt",
        "sources",
        "user_input",
        "visit",
        "waiting",
    )

    def __init__(
        self,
        node_id: UUID,
        visit: int,
        attempt: int = 1,
        inputs: tuple[ActivationKey, ...] = (),
        *,
        not_before: float = 0.0,
        waiting: bool = False,
        prompt: str = "",
        options: list[str] | None = None,
        user_input: str | None = None,
    ) -> None:
        self.node_id = node_id
        self.visit = visit
        self.attempt = attempt
        self._inputs: tuple[ActivationKey, ...] | None = inputs
        self.not_before = not_before
        self.waiting = waiting
        self.prompt = prompt
        self.options = options
        self.user_input = user_input
        # Runtime only (never persisted): the compiled node and the input records.
        self.cnode: Any = None
        self.sources: tuple[NodeExecution, ...] = ()

    @classmethod
    def _engine(
        cls, node_id: UUID, visit: int, cnode: Any, sources: tuple[NodeExecution, ...]
    ) -> Activation:
        """The runner's fast constructor; ``inputs`` is derived from ``sources``."""
        act = cls.__new__(cls)
        act.node_id = node_id
        act.visit = visit
        act.attempt = 1
        act._inputs = None
        act.not_before = 0.0
        act.waiting = False
        act.prompt = ""
        act.options = None
        act.user_input = None
        act.cnode = cnode
        act.sources = sources
        return act

    @property
    def inputs(self) -> tuple[ActivationKey, ...]:
        """The activations whose outputs were delivered to this one."""
        inputs = self._inputs
        if inputs is None:
            inputs = self._inputs = tuple((s.node_id, s.visit) for s in self.sources)
        return inputs

    @property
    def key(self) -> ActivationKey:
        return (self.node_id, self.visit)

    def to_dict(self) -> dict[str, Any]:
        return {
            "node_id": str(self.node_id),
            "visit": self.visit,
            "attempt": self.attempt,
            "inputs": [_key_to_json(k) for k in self.inputs],
            "not_before": self.not_before,
            "waiting": self.waiting,
            "prompt": self.prompt,
            "options": self.options,
            "user_input": self.user_input,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Activation:
        return cls(
            UUID(data["node_id"]),
            int(data["visit"]),
            int(data.get("attempt", 1)),
            tuple(_key_from_json(k) for k in data.get("inputs", ())),
            not_before=float(data.get("not_before", 0.0)),
            waiting=bool(data.get("waiting", False)),
            prompt=data.get("prompt", ""),
            options=data.get("options"),
            user_input=data.get("user_input"),
        )

    @property
    def child_flow(self) -> UUID | None:
        """The child flow this activation waits for (see `CHILD_WAIT`), else None."""
        marker = self.user_input
        if self.waiting and marker is not None and marker.startswith(CHILD_WAIT):
            return UUID(marker[len(CHILD_WAIT) :])
        return None

    def __repr__(self) -> str:
        state = " waiting" if self.waiting else ""
        return f"Activation({self.node_id}, visit={self.visit}, attempt={self.attempt}{state})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Activation):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One edge delivering to a join slot of a node with several incoming edges.

    ``slot`` numbers the target's open join states in creation order; ``source``
    is the delivering activation, or None for a dead signal (the edge will never
    deliver in this visit).
    """

    target: UUID
    slot: int
    edge: UUID
    source: ActivationKey | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": str(self.target),
            "slot": self.slot,
            "edge": str(self.edge),
            "source": None if self.source is None else _key_to_json(self.source),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Delivery:
        source = data.get("source")
        return cls(
            UUID(data["target"]),
            int(data["slot"]),
            UUID(data["edge"]),
            None if source is None else _key_from_json(source),
        )


class UsageCount(NamedTuple):
    """What one accepted record adds to a budget key's totals (`KeepsKeyUsage`)."""

    key: str
    node_runs: int
    tokens: int
    cost: float


class TokenCount(NamedTuple):
    """LLM tokens one accepted record adds to a limit key's window at ``at`` (the
    engine's clock; `LimitsTokens`); counts at or before ``at - per`` may be dropped."""

    key: str
    tokens: int
    at: float
    per: float


class WindowAsk(NamedTuple):
    """One ask of a window in its line's order (`KeepsWindowLines`): may ``waiter``
    start under ``key``'s window of ``limit`` per ``per`` seconds at ``now`` (the
    engine's clock)? ``line`` names the window's line; ``wall`` (wall time) drops its
    lapsed waiters, and ``expires_at`` (wall time) is when ``waiter``'s mark lapses."""

    key: str
    line: str
    waiter: str
    limit: int
    per: float
    now: float
    wall: float
    expires_at: float


class Commit:
    """Everything one activation's outcome changes, applied by a store all or nothing.

    - ``done``: the pending activation that ends here (removed from the queue);
    - ``record``: its record (finished, failed, skipped, waiting, cancelled);
    - ``memory``: flow-memory updates, applied in order;
    - ``deliveries`` / ``closed``: join deliveries to add, then join slots to drop;
    - ``enqueue``: activations to add to (or replace in) the queue;
    - ``loop_exits`` / ``loop_resets``: exit edges that delivered in a loop's
      current run (loop header id, edge id), and loops whose run ended;
    - ``events``: the flow's events since the last commit (tokens excepted),
      numbered; the store appends them to the flow's event log;
    - ``key_usage`` / ``key_tokens``: the record's usage for its budget keys and its
      LLM tokens for its limit keys' windows, applied with the rest by a store with
      `KeepsKeyUsage` / `LimitsTokens` (the engine puts them here only for such a
      store): a refused commit counts nothing (docs/limits.md);
    - ``release_slots``: concurrency slots ``(key, holder)`` the activation held,
      given up by an accepted commit of a store with `ReleasesSlotsInCommit` (the
      engine puts them here only for such a store; a refused commit keeps them, and
      the engine releases them separately).

    Fencing (see `DurableStore.commit`): ``epoch`` is the lease epoch the commit
    was computed under; ``done`` must still be pending (with the attempt of
    ``record``); ``answers`` names a pending activation that must be waiting for
    input. A commit that fails a precondition changes nothing.

    Stores apply them in this order. The sequences are empty tuples until the
    runner adds to them, so a commit that changes little allocates little.

    ``keep_change``: a store with the `ReadsChanges` ability keeps this commit's
    change to the frontier (`quartermaster_engine.stores.changes`) in the same
    write; set by the runs of a `FlowStepper`, which read changes back.
    """

    __slots__ = (
        "answers",
        "closed",
        "deliveries",
        "done",
        "enqueue",
        "epoch",
        "events",
        "keep_change",
        "key_tokens",
        "key_usage",
        "loop_exits",
        "loop_resets",
        "memory",
        "record",
        "release_slots",
    )

    def __init__(
        self,
        done: ActivationKey | None = None,
        record: NodeExecution | None = None,
        memory: dict[str, Any] | None = None,
        deliveries: Sequence[Delivery] = (),
        closed: Sequence[tuple[UUID, int]] = (),
        enqueue: Sequence[Activation] = (),
        loop_exits: Sequence[tuple[UUID, UUID]] = (),
        loop_resets: Sequence[UUID] = (),
        *,
        epoch: int | None = None,
        events: Sequence[FlowEvent] = (),
        answers: ActivationKey | None = None,
        key_usage: Sequence[UsageCount] = (),
        key_tokens: Sequence[TokenCount] = (),
        release_slots: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.done = done
        self.record = record
        self.memory = memory
        self.deliveries = deliveries
        self.closed = closed
        self.enqueue = enqueue
        self.loop_exits = loop_exits
        self.loop_resets = loop_resets
        self.epoch = epoch
        self.events = events
        self.answers = answers
        self.keep_change = False
        self.key_usage = key_usage
        self.key_tokens = key_tokens
        self.release_slots = release_slots

    def add_delivery(self, delivery: Delivery) -> None:
        if self.deliveries:
            self.deliveries.append(delivery)  # type: ignore[attr-defined]
        else:
            self.deliveries = [delivery]

    def add_closed(self, target: UUID, slot: int) -> None:
        if self.closed:
            self.closed.append((target, slot))  # type: ignore[attr-defined]
        else:
            self.closed = [(target, slot)]

    def add_enqueue(self, activation: Activation) -> None:
        if self.enqueue:
            self.enqueue.append(activation)  # type: ignore[attr-defined]
        else:
            self.enqueue = [activation]

    def add_loop_exit(self, header: UUID, edge: UUID) -> None:
        if self.loop_exits:
            self.loop_exits.append((header, edge))  # type: ignore[attr-defined]
        else:
            self.loop_exits = [(header, edge)]

    def add_loop_reset(self, header: UUID) -> None:
        if self.loop_resets:
            self.loop_resets.append(header)  # type: ignore[attr-defined]
        else:
            self.loop_resets = [header]

    def to_dict(self) -> dict[str, Any]:
        return {
            "done": None if self.done is None else _key_to_json(self.done),
            "record": None if self.record is None else self.record.to_dict(),
            "memory": self.memory,
            "deliveries": [d.to_dict() for d in self.deliveries],
            "closed": [[str(t), s] for t, s in self.closed],
            "enqueue": [a.to_dict() for a in self.enqueue],
            "loop_exits": [[str(h), str(e)] for h, e in self.loop_exits],
            "loop_resets": [str(h) for h in self.loop_resets],
            "epoch": self.epoch,
            "events": [e.to_dict() for e in self.events],
            "answers": None if self.answers is None else _key_to_json(self.answers),
        }

    def __repr__(self) -> str:
        return f"Commit({self.to_dict()!r})"


@dataclass(slots=True)
class FlowRecord:
    """A flow as a store keeps it."""

    flow_id: UUID
    graph: GraphSpec
    input: str
    status: FlowStatus = FlowStatus.RUNNING
    created_at: float = 0.0
    updated_at: float = 0.0
    error: str | None = None
    final_output: str | None = None
    event_seq: int = 0
    parent_flow_id: UUID | None = None
    #: Commits applied so far (every commit adds one).
    version: int = 0
    #: The process driving the flow (``host:pid:runner``), its lease epoch, and
    #: when the lease runs out unless renewed (seconds since the epoch).
    lease_owner: str | None = None
    lease_epoch: int = 0
    lease_expires: float = 0.0

    def lease(self) -> Lease | None:
        """The flow's lease if one is held (it may have run out)."""
        if self.lease_owner is None:
            return None
        return Lease(self.lease_owner, self.lease_epoch, self.lease_expires)

    def to_dict(self, *, with_graph: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "flow_id": str(self.flow_id),
            "input": self.input,
            "status": self.status.value,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "error": self.error,
            "final_output": self.final_output,
            "event_seq": self.event_seq,
            "parent_flow_id": None if self.parent_flow_id is None else str(self.parent_flow_id),
            "version": self.version,
            "lease_owner": self.lease_owner,
            "lease_epoch": self.lease_epoch,
            "lease_expires": self.lease_expires,
        }
        if with_graph:
            data["graph"] = self.graph.model_dump(mode="json")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], graph: GraphSpec | None = None) -> FlowRecord:
        parent = data.get("parent_flow_id")
        return cls(
            flow_id=UUID(data["flow_id"]),
            graph=graph if graph is not None else GraphSpec.model_validate(data["graph"]),
            input=data["input"],
            status=FlowStatus(data["status"]),
            created_at=float(data["created_at"]),
            updated_at=float(data["updated_at"]),
            error=data.get("error"),
            final_output=data.get("final_output"),
            event_seq=int(data.get("event_seq", 0)),
            parent_flow_id=None if parent is None else UUID(parent),
            version=int(data.get("version", 0)),
            lease_owner=data.get("lease_owner"),
            lease_epoch=int(data.get("lease_epoch", 0)),
            lease_expires=float(data.get("lease_expires", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class Lease:
    """A process's claim to drive a flow: only commits made under the current
    ``epoch`` are accepted. Every new holder gets a higher epoch."""

    owner: str
    epoch: int
    expires_at: float


@dataclass(slots=True)
class FlowUpdate:
    """A change of a flow's status. When the new status is terminal the store
    also drops the flow's queue, join deliveries and loop marks.

    ``events`` are appended to the flow's event log (``event_seq`` is then their
    last number); ``epoch``, when set, must be the flow's current lease epoch,
    and a terminal flow cannot be changed under one; ``release_lease`` ends the
    lease (a paused or ended flow has no driver).
    """

    status: FlowStatus
    updated_at: float
    error: str | None = None
    final_output: str | None = None
    event_seq: int = 0
    events: Sequence[FlowEvent] = ()
    epoch: int | None = None
    release_lease: bool = False


@dataclass(slots=True)
class FlowMove:
    """A flow moved to another graph (`MovesFlows.move_flow`; `Engine.migrate`):
    ``graph`` replaces its stored graph and ``events`` are appended to its log, in
    one write, only while the flow's lease epoch is still ``epoch`` and its status
    still ``status`` (as the mover read it). Its queue, join deliveries, loop marks,
    records and memory are kept: the new graph's nodes carry the ids of the old
    nodes they replace."""

    graph: GraphSpec
    status: FlowStatus
    epoch: int
    updated_at: float
    events: Sequence[FlowEvent] = ()


@dataclass(slots=True)
class FlowSnapshot:
    """Everything needed to continue a flow in another process.

    ``records`` are the flow's records in commit order, numbered from 1; a
    snapshot read with ``load_flow(..., records_after=n)`` holds only those
    numbered above ``n`` (a process that read the rest before catches up
    without reading the flow's whole history again). ``record_count`` is how
    many the flow has in all.
    """

    flow: FlowRecord
    memory: dict[str, Any]
    records: list[NodeExecution]
    pending: list[Activation]
    deliveries: list[Delivery]
    loop_exits: list[tuple[UUID, UUID]]
    record_count: int = -1

    def __post_init__(self) -> None:
        if self.record_count < 0:
            self.record_count = len(self.records)


def latest_records(records: Sequence[NodeExecution]) -> list[NodeExecution]:
    """Each node's latest record of ``records`` (commit order): its state now, in the
    order the nodes first ran. A user node answered has one (finished), not two."""
    latest: dict[UUID, NodeExecution] = {}
    for record in records:
        latest[record.node_id] = record
    return list(latest.values())
