"""Messages between nodes: histories, routing and context-window management."""

from quartermaster_engine.messaging.context_manager import ContextManager, TruncationStrategy
from quartermaster_engine.messaging.history import MessageLog
from quartermaster_engine.messaging.message_router import MessageRouter

__all__ = ["ContextManager", "MessageLog", "MessageRouter", "TruncationStrategy"]
