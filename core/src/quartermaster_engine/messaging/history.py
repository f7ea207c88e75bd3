"""Conversation histories shared structurally between activations.

A node's history is its predecessors' histories plus a few messages of its own.
Copying lists per node would make a long CONTINUE chain quadratic, so a history
is an immutable sequence of parts, each a `Message` or another `MessageLog`;
a node builds its own in O(parts), and a flat list is only made when someone
reads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
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


def rebuild_log(
    rec: NodeExecution, parents_by_key: Mapping[tuple[UUID, int], NodeExecution]
) -> MessageLog:
    """A record's history: its system messages, then the histories of the activations
    it continues (``rec.history_parents``, found in ``parents_by_key`` with their
    ``log`` set), then the rest of its own messages.

    Records keep only their own messages; every store and a restoring run read
    histories back through this one rule.
    """
    own = rec.messages
    lead = 0
    while lead < len(own) and own[lead].role is MessageRole.SYSTEM:
        lead += 1
    parent_logs: list[MessageLog] = []
    for key in rec.history_parents:
        parent = parents_by_key.get(key)
        if parent is not None and parent.log is not None:
            parent_logs.append(parent.log)
    return MessageLog((*own[:lead], *parent_logs, *own[lead:]))


def history_of(records: Iterable[NodeExecution], node_id: UUID) -> list[Message]:
    """The history that ``node_id``'s latest record ends, from a flow's records in
    commit order (parents always commit before the records that continue them)."""
    by_key: dict[tuple[UUID, int], NodeExecution] = {}
    found: MessageLog | None = None
    for rec in records:
        rec.log = rebuild_log(rec, by_key)
        prev = by_key.get(rec.key)
        if prev is None or rec.attempt >= prev.attempt:
            by_key[rec.key] = rec
        if rec.node_id == node_id:
            found = rec.log
    return [] if found is None else found.to_list()
