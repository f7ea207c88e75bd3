"""`InMemoryStore`: the whole store contract in process memory (no persistence)."""

from __future__ import annotations

import bisect
import copy
import threading
import time
from collections import deque
from datetime import timedelta
from typing import Any
from uuid import UUID

from quartermaster_engine.context.node_execution import NodeExecution
from quartermaster_engine.events import FlowEvent
from quartermaster_engine.memory.persistent_memory import InMemoryPersistence
from quartermaster_engine.schedules.memory import MemorySchedules
from quartermaster_engine.stores.base import FlowExistsError, FlowNotFoundError
from quartermaster_engine.stores.changes import KEPT_CHANGES, FlowChanges, changes_after
from quartermaster_engine.stores.fencing import (
    check_lease_free,
    check_move,
    check_record_fence,
    duplicate_commit,
    not_waiting,
)
from quartermaster_engine.stores.records import (
    Activation,
    Commit,
    Delivery,
    FlowMove,
    FlowRecord,
    FlowSnapshot,
    FlowStatus,
    FlowUpdate,
    Lease,
)
from quartermaster_engine.types import Message


class _FlowData:
    __slots__ = (
        "changes",
        "deliveries",
        "events",
        "latest",
        "loop_exits",
        "memory",
        "messages",
        "pending",
        "record",
        "records",
    )

    def __init__(self, record: FlowRecord | None) -> None:
        self.record = record
        self.memory: dict[str, Any] = {}
        self.records: list[NodeExecution] = []
        # Keyed by UUID.int: hashing a UUID runs Python code, hashing its int does not,
        # and a commit looks up several keys.
        self.latest: dict[int, NodeExecution] = {}
        self.pending: dict[tuple[int, int], Activation] = {}
        # Join deliveries by slot, then by delivering edge: a repeated delivery of
        # an edge into a slot replaces itself instead of counting twice.
        self.deliveries: dict[tuple[int, int], dict[int, Delivery]] = {}
        self.loop_exits: set[tuple[UUID, UUID]] = set()
        # Histories set explicitly through save_messages / append_message.
        self.messages: dict[int, list[Message]] = {}
        self.events: list[FlowEvent] = []
        #: (version, commit) of the latest commits that keep their change (`ReadsChanges`).
        self.changes: deque[tuple[int, Commit]] | None = None


class InMemoryStore(MemorySchedules):
    """Dict-backed store implementing `ExecutionStore` and `DurableStore`.

    Fast and complete, but nothing survives the process. Safe to share between
    threads.

    As in 0.1.5, the memory methods (`save_memory`, `get_memory`, `get_all_memory`)
    copy values in and out (deep copies), so a caller that changes a dict it
    saved or read does not change what is stored, as with a durable store. The
    engine's own path (`commit`, `load_flow`) copies nothing: the engine owns
    the values it commits and never changes them afterwards.
    """

    def __init__(self) -> None:
        super().__init__()
        self._flows: dict[int, _FlowData] = {}
        self._lock = threading.Lock()
        self._persistence = InMemoryPersistence()

    def persistent_memory(self) -> InMemoryPersistence:
        """Per-agent persistent memory living as long as this store."""
        return self._persistence

    def _data(self, flow_id: UUID) -> _FlowData:
        data = self._flows.get(flow_id.int)
        if data is None:
            data = self._flows[flow_id.int] = _FlowData(None)
        return data

    # -- 0.1.5 contract ------------------------------------------------------

    def save_node_execution(self, flow_id: UUID, node_id: UUID, execution: NodeExecution) -> None:
        with self._lock:
            data = self._data(flow_id)
            data.records.append(execution)
            data.latest[node_id.int] = execution

    def get_node_execution(self, flow_id: UUID, node_id: UUID) -> NodeExecution | None:
        data = self._flows.get(flow_id.int)
        return None if data is None else data.latest.get(node_id.int)

    def get_all_node_executions(self, flow_id: UUID) -> dict[UUID, NodeExecution]:
        data = self._flows.get(flow_id.int)
        return {} if data is None else {r.node_id: r for r in data.latest.values()}

    def save_memory(self, flow_id: UUID, key: str, value: Any) -> None:
        value = copy.deepcopy(value)
        with self._lock:
            self._data(flow_id).memory[key] = value

    def get_memory(self, flow_id: UUID, key: str) -> Any:
        data = self._flows.get(flow_id.int)
        return None if data is None else copy.deepcopy(data.memory.get(key))

    def get_all_memory(self, flow_id: UUID) -> dict[str, Any]:
        data = self._flows.get(flow_id.int)
        if data is None:
            return {}
        with self._lock:
            memory = dict(data.memory)
        return copy.deepcopy(memory)

    def delete_memory(self, flow_id: UUID, key: str) -> None:
        with self._lock:
            data = self._flows.get(flow_id.int)
            if data is not None:
                data.memory.pop(key, None)

    def save_messages(self, flow_id: UUID, node_id: UUID, messages: list[Message]) -> None:
        with self._lock:
            self._data(flow_id).messages[node_id.int] = list(messages)

    def get_messages(self, flow_id: UUID, node_id: UUID) -> list[Message]:
        data = self._flows.get(flow_id.int)
        if data is None:
            return []
        explicit = data.messages.get(node_id.int)
        if explicit is not None:
            return list(explicit)
        record = data.latest.get(node_id.int)
        if record is None:
            return []
        if record.log is not None:
            return record.log.to_list()
        return list(record.messages)

    def append_message(self, flow_id: UUID, node_id: UUID, message: Message) -> None:
        current = self.get_messages(flow_id, node_id)
        current.append(message)
        with self._lock:
            self._data(flow_id).messages[node_id.int] = current

    def clear_flow(self, flow_id: UUID) -> None:
        with self._lock:
            self._flows.pop(flow_id.int, None)

    # -- durable contract ----------------------------------------------------

    def create_flow(self, record: FlowRecord) -> None:
        with self._lock:
            existing = self._flows.get(record.flow_id.int)
            if existing is not None and existing.record is not None:
                raise FlowExistsError(f"flow {record.flow_id} already exists")
            data = existing if existing is not None else _FlowData(None)
            data.record = record
            self._flows[record.flow_id.int] = data

    def get_flow(self, flow_id: UUID) -> FlowRecord | None:
        data = self._flows.get(flow_id.int)
        return None if data is None else data.record

    def _flow(self, flow_id: UUID) -> tuple[_FlowData, FlowRecord]:
        data = self._flows.get(flow_id.int)
        if data is None or data.record is None:
            raise FlowNotFoundError(f"no flow {flow_id}")
        return data, data.record

    def update_flow(self, flow_id: UUID, update: FlowUpdate) -> None:
        with self._lock:
            data, record = self._flow(flow_id)
            if update.epoch is not None:
                check_record_fence(record, update.epoch)
            if update.events:
                data.events.extend(update.events)
            if update.release_lease:
                record.lease_owner = None
                record.lease_expires = 0.0
            record.status = update.status
            record.updated_at = update.updated_at
            record.error = update.error
            record.final_output = update.final_output
            record.event_seq = update.event_seq
            if update.status.is_terminal:
                data.pending.clear()
                data.deliveries.clear()
                data.loop_exits.clear()
                data.changes = None

    def move_flow(self, flow_id: UUID, move: FlowMove) -> None:
        """Replace the flow's graph and log the move's events (see `MovesFlows`)."""
        with self._lock:
            data, record = self._flow(flow_id)
            check_move(flow_id, record.status, record.lease_epoch, record.lease_owner, move)
            record.graph = move.graph
            record.updated_at = move.updated_at
            if move.events:
                data.events.extend(move.events)
                record.event_seq = move.events[-1].seq

    def commit(self, flow_id: UUID, commit: Commit) -> None:
        with self._lock:
            data = self._flows.get(flow_id.int)  # (`_flow` inlined: once per activation)
            flow = None if data is None else data.record
            if data is None or flow is None:
                raise FlowNotFoundError(f"no flow {flow_id}")
            check_record_fence(flow, commit.epoch)
            done = commit.done
            if done is not None:
                key = (done[0].int, done[1])
                pending = data.pending.get(key)
                if pending is None or (
                    commit.record is not None and pending.attempt != commit.record.attempt
                ):
                    raise duplicate_commit(
                        flow_id, done, None if commit.record is None else commit.record.attempt
                    )
                del data.pending[key]
            if commit.answers is not None:
                node_id, visit = commit.answers
                waiting = data.pending.get((node_id.int, visit))
                if waiting is None or not waiting.waiting:
                    raise not_waiting(flow_id, commit.answers)
            record = commit.record
            if record is not None:
                data.records.append(record)
                data.latest[record.node_id.int] = record
                if data.messages:
                    data.messages.pop(record.node_id.int, None)
            if commit.memory:
                data.memory.update(commit.memory)
            for delivery in commit.deliveries:
                by_edge = data.deliveries.setdefault((delivery.target.int, delivery.slot), {})
                by_edge.setdefault(delivery.edge.int, delivery)
            for target, slot in commit.closed:
                data.deliveries.pop((target.int, slot), None)
            for activation in commit.enqueue:
                data.pending[(activation.node_id.int, activation.visit)] = activation
            data.loop_exits.update(commit.loop_exits)
            if commit.loop_resets:
                resets = set(commit.loop_resets)
                data.loop_exits = {m for m in data.loop_exits if m[0] not in resets}
            if commit.events:
                data.events.extend(commit.events)
                flow.event_seq = commit.events[-1].seq
            flow.version += 1
            flow.updated_at = time.time()
            if commit.keep_change:
                if data.changes is None:
                    data.changes = deque(maxlen=KEPT_CHANGES)
                data.changes.append((flow.version, commit))

    def acquire_lease(
        self, flow_id: UUID, owner: str, ttl: float, *, take_over: int | None = None
    ) -> Lease:
        with self._lock:
            _, record = self._flow(flow_id)
            now = time.time()
            check_lease_free(flow_id, record.lease(), now, take_over)
            record.lease_owner = owner
            record.lease_epoch += 1
            record.lease_expires = now + ttl
            return Lease(owner, record.lease_epoch, record.lease_expires)

    def renew_lease(self, flow_id: UUID, epoch: int, ttl: float) -> Lease:
        with self._lock:
            _, record = self._flow(flow_id)
            check_record_fence(record, epoch, ending=False)
            record.lease_expires = time.time() + ttl
            return Lease(record.lease_owner or "", epoch, record.lease_expires)

    def release_lease(self, flow_id: UUID, epoch: int) -> None:
        with self._lock:
            data = self._flows.get(flow_id.int)
            record = None if data is None else data.record
            if record is not None and record.lease_epoch == epoch:
                record.lease_owner = None
                record.lease_expires = 0.0

    def due_timers(self, now: float, limit: int) -> list[UUID]:
        """`FindsDueTimers`: paused flows with a timer or deadline due at ``now``, earliest first
        (a scan: the memory store holds one process's flows)."""
        due: list[tuple[float, UUID]] = []
        with self._lock:
            for data in self._flows.values():
                record = data.record
                if record is None or record.status is not FlowStatus.PAUSED:
                    continue
                times = [
                    a.not_before
                    for a in data.pending.values()
                    if a.not_before and a.not_before <= now
                ]
                if times:
                    due.append((min(times), record.flow_id))
        due.sort(key=lambda item: item[0])
        return [flow_id for _, flow_id in due[:limit]]

    def read_events(
        self, flow_id: UUID, after: int = 0, limit: int | None = None
    ) -> list[FlowEvent]:
        data = self._flows.get(flow_id.int)
        if data is None:
            return []
        events = data.events
        start = bisect.bisect_right(events, after, key=lambda e: e.seq)
        end = len(events) if limit is None else start + limit
        return events[start:end]

    def load_flow(self, flow_id: UUID, *, records_after: int = 0) -> FlowSnapshot | None:
        with self._lock:
            data = self._flows.get(flow_id.int)
            if data is None or data.record is None:
                return None
            return FlowSnapshot(
                flow=data.record,
                memory=dict(data.memory),
                records=data.records[records_after:],
                record_count=len(data.records),
                pending=list(data.pending.values()),
                deliveries=[d for ds in data.deliveries.values() for d in ds.values()],
                loop_exits=sorted(data.loop_exits, key=str),
            )

    def read_changes(
        self, flow_id: UUID, after: int, *, records_after: int = 0
    ) -> FlowChanges | None:
        """What changed since version ``after`` (the `ReadsChanges` ability)."""
        with self._lock:
            data = self._flows.get(flow_id.int)
            if data is None or data.record is None:
                return None
            flow = data.record
            if flow.version == after:
                return FlowChanges(copy.copy(flow), [], len(data.records), [])
            return FlowChanges(
                flow=copy.copy(flow),
                records=data.records[records_after:],
                record_count=len(data.records),
                commits=changes_after(data.changes or (), after, flow.version),
            )

    def list_flows(
        self, *, status: FlowStatus | None = None, limit: int | None = None
    ) -> list[FlowRecord]:
        records = [
            d.record
            for d in list(self._flows.values())
            if d.record is not None and (status is None or d.record.status is status)
        ]
        records.sort(key=lambda r: r.updated_at, reverse=True)
        return records if limit is None else records[:limit]

    def delete_flow(self, flow_id: UUID) -> bool:
        with self._lock:
            return self._flows.pop(flow_id.int, None) is not None

    def prune(self, older_than: timedelta) -> int:
        cutoff = time.time() - older_than.total_seconds()
        with self._lock:
            doomed = [
                fid
                for fid, d in self._flows.items()
                if d.record is not None
                and d.record.status.is_terminal
                and d.record.updated_at < cutoff
            ]
            for fid in doomed:
                del self._flows[fid]
        return len(doomed)
