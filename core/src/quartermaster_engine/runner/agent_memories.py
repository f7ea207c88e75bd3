"""`AgentMemories`: which per-agent persistent memory an engine's flows use."""

from __future__ import annotations

from typing import Any

from quartermaster_engine.memory.persistent_memory import AgentMemory, InMemoryPersistence
from quartermaster_engine.stores.base import KeepsPersistentMemory


class AgentMemories:
    """The ``persistence`` given, else the store's own (`KeepsPersistentMemory`: it
    survives processes with a durable store), else one in memory; made on first use."""

    def __init__(self, store: Any, persistence: Any | None) -> None:
        self._store = store
        self._persistence = persistence
        self._agent_memory: AgentMemory | None = None

    @property
    def persistence(self) -> Any:
        if self._persistence is None:
            store = self._store
            own = isinstance(store, KeepsPersistentMemory)
            self._persistence = store.persistent_memory() if own else InMemoryPersistence()
        return self._persistence

    @property
    def agent_memory(self) -> AgentMemory:
        """`persistence` with every method ``async`` (see `AgentMemory`)."""
        if self._agent_memory is None or self._agent_memory.target is not self.persistence:
            self._agent_memory = AgentMemory(self.persistence)
        return self._agent_memory
