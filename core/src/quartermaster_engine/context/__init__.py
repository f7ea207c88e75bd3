"""Execution context and activation records."""

from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus

__all__ = ["ExecutionContext", "NodeExecution", "NodeStatus"]
