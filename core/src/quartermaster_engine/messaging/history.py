"""Conversation histories shared structurally between activations.

A node's history is its predecessors' histories plus a few messages of its own.
Copying lists per node would make a long CONTINUE chain quadratic, so a history
is an immutable sequence of parts, each a `Message` or another `MessageLog`;
a node builds its own in O(parts), and a flat list is only made when someone
reads it.
"""

from __future__ import annotations

from collections.abc import Iterator

from quartermaster_engine.types import Message


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
