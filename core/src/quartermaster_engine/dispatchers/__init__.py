"""Dispatchers: where and when activations run."""

from quartermaster_engine.dispatchers.async_dispatcher import AsyncDispatcher
from quartermaster_engine.dispatchers.base import TaskDispatcher
from quartermaster_engine.dispatchers.sync_dispatcher import SyncDispatcher

__all__ = ["AsyncDispatcher", "SyncDispatcher", "TaskDispatcher"]
