"""A flow's history: one `Checkpoint` per commit, read from what the store keeps.

A durable store already keeps every record a flow committed, in commit order
(`FlowSnapshot.records`), and each record keeps what the memory and message
history need: the node's ``memory_updates`` (in its output data) and the
messages it added with the activations its history continues. Folding the
records in order gives the memory and the messages as they stood after each
commit, so history costs nothing on the hot path: it is a read.

Edits (`engine.update`) are commits too; each logs a `FlowEdited` event naming
how many records the flow had when it was made, and appears in the history
right after that record.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from uuid import UUID

from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus
from quartermaster_engine.events import FlowEdited
from quartermaster_engine.history.replay import memory_updates
from quartermaster_engine.messaging.history import EMPTY_LOG, MessageLog, rebuild_log
from quartermaster_engine.stores.records import FlowSnapshot
from quartermaster_engine.types import Message

#: The ``outcome`` of a checkpoint made by an edit rather than by a node.
EDITED = "edited"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The flow as it stood after one commit.

    ``seq`` numbers the flow's checkpoints from 1 in commit order. ``outcome`` is
    the committed record's status (``finished``, ``failed``, ``skipped``,
    ``waiting_user``, ``cancelled``) or ``edited`` for an edit (then ``node_id``
    is None). ``memory`` is the flow memory after the commit (read-only, shared
    between checkpoints that did not change it); ``messages`` is the message
    history the committed activation ends (for an edit: the edited node's).
    ``time`` is when the activation finished (or started, when it has no end;
    for an edit: when it was made).
    """

    seq: int
    node_id: UUID | None
    node_name: str
    visit: int
    attempt: int
    outcome: str
    memory: Mapping[str, Any]
    log: MessageLog
    time: float | None
    result: str | None = None
    error: str | None = None
    #: The activation reused the recorded result of the flow this fork came from
    #: (``fork(..., reuse="unchanged")``): its executor did not run.
    reused: bool = False

    @property
    def messages(self) -> list[Message]:
        """The message history as it stood after this commit."""
        return self.log.to_list()

    def to_dict(self, *, with_messages: bool = True) -> dict[str, Any]:
        """JSON-ready form."""
        data: dict[str, Any] = {
            "seq": self.seq,
            "node_id": None if self.node_id is None else str(self.node_id),
            "node": self.node_name,
            "visit": self.visit,
            "attempt": self.attempt,
            "outcome": self.outcome,
            # The record's status, as `qm flows show` names it (``edited`` for an edit).
            "status": self.outcome,
            "time": self.time,
            "result": self.result,
            "error": self.error,
            "reused": self.reused,
            "memory": dict(self.memory),
        }
        if with_messages:
            data["messages"] = [m.to_dict() for m in self.messages]
        return data


def timeline(
    records: Sequence[NodeExecution], edits: Sequence[FlowEdited] = ()
) -> list[NodeExecution | FlowEdited]:
    """The flow's commits in order: its records, with each edit placed after the
    record count it names. Checkpoint ``n`` is item ``n - 1``."""
    out: list[NodeExecution | FlowEdited] = []
    pending = sorted(edits, key=lambda e: (e.after_record, e.seq))
    at = 0
    for count in range(len(records) + 1):
        while at < len(pending) and pending[at].after_record <= count:
            out.append(pending[at])
            at += 1
        if count < len(records):
            out.append(records[count])
    out.extend(pending[at:])
    return out


def checkpoints(
    snapshot: FlowSnapshot,
    edits: Sequence[FlowEdited] = (),
    reused: Collection[tuple[UUID, int]] = (),
    dropped: Mapping[UUID, str] | None = None,
) -> list[Checkpoint]:
    """The checkpoints of the flow ``snapshot`` holds (read with all its records),
    with ``edits`` (its `FlowEdited` events) placed after the record count each names;
    the finished records of the (node, visit) keys in ``reused`` are marked reused
    (of a Map1 node, its start, whose list was reused, not its join).
    ``dropped``: names of nodes a migration dropped from the flow's graph."""
    names = {**(dropped or {}), **{node.id: node.name for node in snapshot.flow.graph.nodes}}
    memory = initial_memory(snapshot, edits)
    by_key: dict[tuple[UUID, int], NodeExecution] = {}
    logs: dict[UUID, MessageLog] = {}
    out: list[Checkpoint] = []
    for seq, item in enumerate(timeline(snapshot.records, edits), 1):
        if isinstance(item, FlowEdited):
            if item.memory:
                memory = MappingProxyType({**memory, **item.memory})
            node = item.node_id
            log = logs.get(node, EMPTY_LOG) if node is not None else EMPTY_LOG
            if item.messages is not None:  # the edited input messages of that node
                log = MessageLog(tuple(Message.from_dict(m) for m in item.messages))
            name = names.get(node, str(node)) if node is not None else ""
            out.append(Checkpoint(seq, node, name, 0, 0, EDITED, memory, log, item.ts or None))
            continue
        rec = item
        if rec.log is None:
            rec.log = rebuild_log(rec, by_key)
        prev = by_key.get(rec.key)
        if prev is None or rec.attempt >= prev.attempt:
            by_key[rec.key] = rec
        updates = memory_updates(rec)
        if updates:
            memory = MappingProxyType({**memory, **updates})
        logs[rec.node_id] = rec.log
        out.append(
            Checkpoint(
                seq,
                rec.node_id,
                names.get(rec.node_id, str(rec.node_id)),
                rec.visit,
                rec.attempt,
                rec.status.value,
                memory,
                rec.log,
                rec.finished if rec.finished is not None else rec.started,
                rec.result,
                rec.error,
                rec.key in reused and _reusable(rec, prev),
            )
        )
    return out


def _reusable(rec: NodeExecution, before: NodeExecution | None) -> bool:
    """Whether ``rec`` (``before``: the record of its key before it) is what a
    reused activation recorded: a finished record, a Map1 node's start."""
    if rec.status is NodeStatus.MAPPING:
        return True
    return rec.status is NodeStatus.FINISHED and (
        before is None or before.status is not NodeStatus.MAPPING
    )


def initial_memory(
    snapshot: FlowSnapshot, edits: Sequence[FlowEdited]
) -> MappingProxyType[str, Any]:
    """The memory before the first commit: keys of the flow's memory now that no
    commit wrote (set before the flow ran, by 0.1.5's ``save_memory``)."""
    written: set[str] = set()
    for rec in snapshot.records:
        written.update(memory_updates(rec) or ())
    for edit in edits:
        written.update(edit.memory or ())
    return MappingProxyType({k: v for k, v in snapshot.memory.items() if k not in written})


__all__ = ["EDITED", "Checkpoint", "checkpoints", "initial_memory", "timeline"]
