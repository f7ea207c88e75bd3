"""quartermaster_graph: the graph model of Quartermaster (nodes, edges, builder, validation, files)."""

from quartermaster_graph.enums import (
    ErrorStrategy,
    ExceptionResolution,
    MessageType,
    NodeType,
    ThoughtType,
    TraverseIn,
    TraverseOut,
)
from quartermaster_graph.models import (
    Agent,
    AgentGraph,
    AgentVersion,
    GraphEdge,
    GraphNode,
    GraphSpec,
    NodePosition,
)

__all__ = [
    "Agent",
    "AgentGraph",
    "AgentVersion",
    "ErrorStrategy",
    "ExceptionResolution",
    "GraphEdge",
    "GraphNode",
    "GraphSpec",
    "MessageType",
    "NodePosition",
    "NodeType",
    "ThoughtType",
    "TraverseIn",
    "TraverseOut",
]
