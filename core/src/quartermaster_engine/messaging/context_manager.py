"""`ContextManager`: cut a node's input messages to the model's context window."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from quartermaster_engine.types import Message, MessageRole


class TruncationStrategy(str, Enum):
    """How messages are dropped when over the limits (0.1.5 names).

    Only DROP_OLDEST is implemented; the others are accepted and behave like it.
    """

    DROP_OLDEST = "drop_oldest"
    DROP_MIDDLE = "drop_middle"
    SUMMARIZE = "summarize"


def default_token_counter(text: str) -> int:
    """Rough estimate: one token per four characters, at least one."""
    return max(1, len(text) // 4)


class ContextManager:
    """Keeps a message list within ``max_messages`` and ``max_tokens``.

    System messages and the node's own input message (``pinned``) are always
    kept; other messages are dropped oldest first until the rest fits.
    ``token_counter`` estimates the tokens of one message's text.
    """

    def __init__(
        self,
        max_tokens: int = 128_000,
        max_messages: int | None = None,
        strategy: TruncationStrategy = TruncationStrategy.DROP_OLDEST,
        token_counter: Callable[[str], int] | None = None,
    ) -> None:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        if max_messages is not None and max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        self.max_tokens = max_tokens
        self.max_messages = max_messages
        self.strategy = strategy
        self.count_tokens = token_counter or default_token_counter

    def estimate_tokens(self, messages: list[Message]) -> int:
        """Estimated total tokens of ``messages``."""
        count = self.count_tokens
        return sum(count(m.content) for m in messages)

    def truncate(
        self,
        messages: list[Message],
        pinned: Message | None = None,
        *,
        max_tokens: int | None = None,
    ) -> list[Message]:
        """The messages that fit, in their original order.

        ``max_tokens`` (a node's own limit) tightens the manager's limit.
        """
        if not messages:
            return messages
        token_limit = self.max_tokens if max_tokens is None else min(max_tokens, self.max_tokens)
        count = self.count_tokens
        sizes = [count(m.content) for m in messages]
        total = sum(sizes)
        too_many = self.max_messages is not None and len(messages) > self.max_messages
        if total <= token_limit and not too_many:
            return messages
        keep = [m.role is MessageRole.SYSTEM or m is pinned for m in messages]
        kept_count = sum(keep)
        kept_tokens = sum(s for s, k in zip(sizes, keep, strict=True) if k)
        message_room = (
            len(messages) if self.max_messages is None else self.max_messages - kept_count
        )
        # Newest first: take droppable messages while they fit.
        for i in range(len(messages) - 1, -1, -1):
            if keep[i]:
                continue
            if message_room <= 0 or kept_tokens + sizes[i] > token_limit:
                break
            keep[i] = True
            kept_tokens += sizes[i]
            message_room -= 1
        return [m for m, k in zip(messages, keep, strict=True) if k]
