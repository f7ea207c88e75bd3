"""Execution context and activation records."""

from quartermaster_engine.context.execution_context import ExecutionContext, child_flow_id
from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus

__all__ = ["ExecutionContext", "NodeExecution", "NodeStatus", "child_flow_id"]
