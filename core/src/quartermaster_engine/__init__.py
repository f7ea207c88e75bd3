"""quartermaster_engine: the execution engine for agent graphs.

The names 0.1.5 exported are all here; the graph model is re-exported from
`quartermaster_graph`.
"""

from quartermaster_engine.context.current_context import current_context
from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus
from quartermaster_engine.convenience import run_graph
from quartermaster_engine.dispatchers import AsyncDispatcher, SyncDispatcher, TaskDispatcher
from quartermaster_engine.events import (
    CustomEvent,
    FlowError,
    FlowEvent,
    FlowFinished,
    FlowPaused,
    FlowResumed,
    FlowStarted,
    FlowStopped,
    NodeDead,
    NodeFinished,
    NodeRetrying,
    NodeReused,
    NodeSkipped,
    NodeStarted,
    ProgressEvent,
    TokenGenerated,
    ToolCallFinished,
    ToolCallStarted,
    UserInputRequired,
    event_from_dict,
)
from quartermaster_engine.memory import (
    FlowMemory,
    InMemoryPersistence,
    MemoryEntry,
    PersistentMemory,
)
from quartermaster_engine.messaging import ContextManager, MessageLog, MessageRouter
from quartermaster_engine.nodes import NodeExecutor, NodeRegistry, NodeResult, SimpleNodeRegistry
from quartermaster_engine.runner import (
    Engine,
    FlowResult,
    FlowRunner,
    FlowStateError,
    NodeConfigError,
    StoreUnavailableError,
    UnknownNodeTypeError,
    WaitingNode,
)
from quartermaster_engine.stores import (
    DurableStore,
    ExecutionStore,
    FlowNotFoundError,
    FlowStatus,
    InMemoryStore,
)
from quartermaster_engine.types import (
    ErrorStrategy,
    GraphEdge,
    GraphNode,
    GraphSpec,
    Message,
    MessageRole,
    MessageType,
    NodeType,
    ThoughtType,
    TraverseIn,
    TraverseOut,
)

__version__ = "0.2.0"

__all__ = [
    "AsyncDispatcher",
    "ContextManager",
    "CustomEvent",
    "DurableStore",
    "Engine",
    "ErrorStrategy",
    "ExecutionContext",
    "ExecutionStore",
    "FlowError",
    "FlowEvent",
    "FlowFinished",
    "FlowMemory",
    "FlowNotFoundError",
    "FlowPaused",
    "FlowResult",
    "FlowResumed",
    "FlowRunner",
    "FlowStarted",
    "FlowStateError",
    "FlowStatus",
    "FlowStopped",
    "GraphEdge",
    "GraphNode",
    "GraphSpec",
    "InMemoryPersistence",
    "InMemoryStore",
    "MemoryEntry",
    "Message",
    "MessageLog",
    "MessageRole",
    "MessageRouter",
    "MessageType",
    "NodeConfigError",
    "NodeDead",
    "NodeExecution",
    "NodeExecutor",
    "NodeFinished",
    "NodeRegistry",
    "NodeResult",
    "NodeRetrying",
    "NodeReused",
    "NodeSkipped",
    "NodeStarted",
    "NodeStatus",
    "NodeType",
    "PersistentMemory",
    "ProgressEvent",
    "SimpleNodeRegistry",
    "StoreUnavailableError",
    "SyncDispatcher",
    "TaskDispatcher",
    "ThoughtType",
    "TokenGenerated",
    "ToolCallFinished",
    "ToolCallStarted",
    "TraverseIn",
    "TraverseOut",
    "UnknownNodeTypeError",
    "UserInputRequired",
    "WaitingNode",
    "current_context",
    "event_from_dict",
    "run_graph",
]
