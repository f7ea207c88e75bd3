"""Memory: flow-scoped (`FlowMemory`) and per-agent persistent (`PersistentMemory`)."""

from quartermaster_engine.memory.flow_memory import FlowMemory
from quartermaster_engine.memory.persistent_memory import (
    AgentMemory,
    InMemoryPersistence,
    MemoryEntry,
    PersistentMemory,
)

__all__ = ["AgentMemory", "FlowMemory", "InMemoryPersistence", "MemoryEntry", "PersistentMemory"]
