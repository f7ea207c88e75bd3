"""Conversation histories shared structurally between activations.

A node's history is its predecessors' histories plus a few messages of its own.
Copying lists per node would make a long CONTINUE chain quadratic, so a history
is an immutable sequence of parts, each a `Message` or another `MessageLog`;
a node builds its own in O(parts), and a flat list is only made when someone
reads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING
from uuid import UUID

from quartermaster_engine.types import Message, MessageRole

if TYPE_CHECKING:
    from quartermaster_engine.context.node_execution import NodeExecution


class MessageLog:
    """An immutable, structurally shared sequence of messages."""

    __slots__ = ("parts", "size")

    def __init__(self, parts: tuple[Message | MessageLog, ...] = ()) -> None:
        self.parts = parts
        size: int = 0
        for part in parts:
            size += part.size if isinstance(part, MessageLog) else 1
        self.size: int = size

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[Message]:
        # Iterative walk: histories can be nested tens of thousands deep.
        stack: list[Iterator[Message | MessageLog]] = [iter(self.parts)]
        while stack:
            for part in stack[-1]:
                if type(part) is MessageLog:
                    stack.append(iter(part.parts))
                    break
                yield part  # type: ignore[misc]
            else:
                stack.pop()

    def to_list(self) -> list[Message]:
        """A new flat list of the messages, oldest first."""
        return list(self)

    def last(self) -> Message | None:
        """The newest message, or None for an empty log."""
        log: MessageLog = self
        while True:
            for part in reversed(log.parts):
                if type(part) is MessageLog:
                    if part.size:
                        log = part
                        break
                    continue
                return part  # type: ignore[return-value]
            else:
                return None


EMPTY_LOG = MessageLog()


def history_from_records(records: Iterable[NodeExecution], node_id: UUID) -> list[Message]:
    """The history the node's latest record ends, rebuilt from a flow's stored
    records (in commit order) the way a restoring run does: a record's own leading
    system messages, then the histories it continues, then the rest of its own.

    For durable stores answering 0.1.5's ``get_messages`` from their records.
    """
    logs: dict[tuple[UUID, int], tuple[int, MessageLog]] = {}
    latest: MessageLog | None = None
    # Parents always commit before their children, so one pass in commit order works.
    for rec in records:
        own = rec.messages
        lead = 0
        while lead < len(own) and own[lead].role is MessageRole.SYSTEM:
            lead += 1
        parents = [logs[k][1] for k in rec.history_parents if k in logs]
        log = MessageLog((*own[:lead], *parents, *own[lead:]))
        prev = logs.get(rec.key)
        if prev is None or rec.attempt >= prev[0]:
            logs[rec.key] = (rec.attempt, log)
        if rec.node_id == node_id:
            latest = log
    return [] if latest is None else latest.to_list()
