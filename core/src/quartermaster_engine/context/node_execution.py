"""Activation records: what one run of one node did.

Each run of a node is an activation, identified within its flow by
(node, visit, attempt); a `NodeExecution` is its record. Loops keep the record
of every visit instead of overwriting the previous one.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from uuid import UUID

from quartermaster_engine.messaging.history import MessageLog
from quartermaster_engine.types import Message, MessageRole


class NodeStatus(str, Enum):
    """Lifecycle status of an activation."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING_USER = "waiting_user"
    WAITING_TOOL = "waiting_tool"
    SLEEPING = "sleeping"
    #: A Map1 node whose items are running (docs/map.md).
    MAPPING = "mapping"
    FINISHED = "finished"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """Whether the activation is over."""
        return self in _TERMINAL

    @property
    def is_active(self) -> bool:
        """Whether the activation has started and is not over."""
        return not self.is_terminal and self is not NodeStatus.PENDING


_TERMINAL = frozenset(
    {NodeStatus.FINISHED, NodeStatus.FAILED, NodeStatus.SKIPPED, NodeStatus.CANCELLED}
)


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


class NodeExecution:
    """The record of one activation (node, visit, attempt).

    ``result`` is the node's output text. ``messages`` are the messages this
    activation added to the conversation (its own input and output messages),
    ``history_parents`` the activations whose histories precede them, and
    ``inputs`` the activations whose outputs were delivered to it. Stores
    persist these fields; ``log`` is the in-memory history built from them.
    """

    __slots__ = (
        "_data",
        "_inputs",
        "_log",
        "_messages",
        "_out",
        "_parts",
        "_sources",
        "attempt",
        "error",
        "finished",
        "history_parents",
        "node_id",
        "result",
        "started",
        "status",
        "user_input",
        "visit",
    )

    def __init__(
        self,
        node_id: UUID,
        status: NodeStatus = NodeStatus.PENDING,
        *,
        visit: int = 1,
        attempt: int = 1,
        result: str | None = None,
        error: str | None = None,
        output_data: dict[str, Any] | None = None,
        started: float | None = None,
        finished: float | None = None,
        inputs: tuple[tuple[UUID, int], ...] = (),
        messages: tuple[Message, ...] = (),
        history_parents: tuple[tuple[UUID, int], ...] = (),
        user_input: str | None = None,
        log: MessageLog | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        retry_count: int | None = None,
    ) -> None:
        self.node_id = node_id
        self.status = status
        self.visit = visit
        self.attempt = attempt if retry_count is None else retry_count + 1
        self.result = result
        self.error = error
        self._data = output_data
        self.started = started if started_at is None else started_at.timestamp()
        self.finished = finished if finished_at is None else finished_at.timestamp()
        self._inputs: tuple[tuple[UUID, int], ...] | None = inputs
        self._sources: tuple[NodeExecution, ...] = ()
        self._messages: tuple[Message, ...] | None = messages
        self._parts: tuple[Message | MessageLog, ...] | None = None
        self._out: MessageRole | None = None
        self.history_parents = history_parents
        self.user_input = user_input
        self._log = log

    @classmethod
    def _engine(
        cls,
        node_id: UUID,
        status: NodeStatus,
        visit: int,
        attempt: int,
        result: str | None,
        error: str | None,
        output_data: dict[str, Any],
        started: float,
        finished: float,
        sources: tuple[NodeExecution, ...],
        user_input: str | None,
    ) -> NodeExecution:
        """The runner's fast constructor: inputs, messages and history are derived on
        first access from the sources and the parts set by `_set_history`."""
        rec = cls.__new__(cls)
        rec.node_id = node_id
        rec.status = status
        rec.visit = visit
        rec.attempt = attempt
        rec.result = result
        rec.error = error
        rec._data = output_data or None
        rec.started = started
        rec.finished = finished
        rec._inputs = None
        rec._sources = sources
        rec._messages = None
        rec._parts = None
        rec._out = None
        rec.history_parents = ()
        rec.user_input = user_input
        rec._log = None
        return rec

    def _set_history(
        self,
        parts: tuple[Message | MessageLog, ...],
        parents: tuple[tuple[UUID, int], ...],
        output_role: MessageRole | None,
    ) -> None:
        """The input history parts, and the role of the output message that ends the
        history (None: the output adds no message)."""
        self._parts = parts
        self.history_parents = parents
        self._out = output_role

    @property
    def output_data(self) -> dict[str, Any]:
        """The node's structured output (``NodeResult.data``)."""
        data = self._data
        if data is None:
            data = self._data = {}
        return data

    @output_data.setter
    def output_data(self, value: dict[str, Any]) -> None:
        self._data = value

    @property
    def inputs(self) -> tuple[tuple[UUID, int], ...]:
        """The activations whose outputs were delivered to this one."""
        inputs = self._inputs
        if inputs is None:
            inputs = self._inputs = tuple((s.node_id, s.visit) for s in self._sources)
        return inputs

    @inputs.setter
    def inputs(self, value: tuple[tuple[UUID, int], ...]) -> None:
        self._inputs = value

    @property
    def messages(self) -> tuple[Message, ...]:
        """The messages this activation added: its input messages and its output."""
        messages = self._messages
        if messages is None:
            own: list[Message] = [p for p in self._parts or () if type(p) is not MessageLog]  # type: ignore[misc]
            if self._out is not None:
                own.append(Message(self._out, self.result or ""))
            messages = self._messages = tuple(own)
        return messages

    @messages.setter
    def messages(self, value: tuple[Message, ...]) -> None:
        self._messages = value

    @property
    def log(self) -> MessageLog | None:
        """The full history after this activation, shared with its predecessors'."""
        log = self._log
        if log is None and self._parts is not None:
            parts = self._parts
            if self._out is not None:
                parts = (*parts, Message(self._out, self.result or ""))
            log = self._log = MessageLog(parts)
        return log

    @log.setter
    def log(self, value: MessageLog | None) -> None:
        self._log = value

    @property
    def key(self) -> tuple[UUID, int]:
        """(node id, visit): the activation this record belongs to."""
        return (self.node_id, self.visit)

    @property
    def retry_count(self) -> int:
        """Attempts made before this one."""
        return self.attempt - 1

    @property
    def started_at(self) -> datetime | None:
        return _dt(self.started)

    @property
    def finished_at(self) -> datetime | None:
        return _dt(self.finished)

    @property
    def duration_seconds(self) -> float | None:
        """Run time of this attempt, or None if it has not finished."""
        if self.started is not None and self.finished is not None:
            return self.finished - self.started
        return None

    # 0.1.5's state transitions, kept for code that drives records by hand.
    def start(self) -> None:
        self.status = NodeStatus.RUNNING
        self.started = time.time()

    def finish(self, result: str | None = None, output_data: dict[str, Any] | None = None) -> None:
        self.status = NodeStatus.FINISHED
        self.finished = time.time()
        self.result = result
        if output_data:
            self.output_data.update(output_data)

    def fail(self, error: str) -> None:
        self.status = NodeStatus.FAILED
        self.finished = time.time()
        self.error = error

    def skip(self) -> None:
        self.status = NodeStatus.SKIPPED
        self.finished = time.time()

    def wait_for_user(self) -> None:
        self.status = NodeStatus.WAITING_USER

    def wait_for_tool(self) -> None:
        self.status = NodeStatus.WAITING_TOOL

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without the in-memory ``log``)."""
        return {
            "node_id": str(self.node_id),
            "visit": self.visit,
            "attempt": self.attempt,
            "status": self.status.value,
            "result": self.result,
            "error": self.error,
            "output_data": self.output_data,
            "started": self.started,
            "finished": self.finished,
            "inputs": [[str(n), v] for n, v in self.inputs],
            "messages": [m.to_dict() for m in self.messages],
            "history_parents": [[str(n), v] for n, v in self.history_parents],
            "user_input": self.user_input,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeExecution:
        """Inverse of `to_dict`."""
        return cls(
            UUID(data["node_id"]),
            NodeStatus(data["status"]),
            visit=data["visit"],
            attempt=data["attempt"],
            result=data.get("result"),
            error=data.get("error"),
            output_data=data.get("output_data") or {},
            started=data.get("started"),
            finished=data.get("finished"),
            inputs=tuple((UUID(n), v) for n, v in data.get("inputs", ())),
            messages=tuple(Message.from_dict(m) for m in data.get("messages", ())),
            history_parents=tuple((UUID(n), v) for n, v in data.get("history_parents", ())),
            user_input=data.get("user_input"),
        )

    def __repr__(self) -> str:
        return (
            f"NodeExecution(node_id={self.node_id}, visit={self.visit}, attempt={self.attempt}, "
            f"status={self.status.value}, result={self.result!r}, error={self.error!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NodeExecution):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]
