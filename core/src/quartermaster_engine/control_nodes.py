"""The engine's own control-flow node executors: Start1 and End1.

Both pass on the text delivered to them: the start node gets the flow input
(or, when a SpawnStart node loops back, that node's output), and the end
node's output, the flow's ``final_output``, is what reached it. They are
``async def`` so that no dispatcher sends them to a thread.
"""

from __future__ import annotations

from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.nodes import NodeExecutor, NodeResult


class StartExecutor:
    """Start1: outputs the flow input."""

    async def execute(self, context: ExecutionContext) -> NodeResult:
        return NodeResult(success=True, output_text=context.input_text)


class EndExecutor:
    """End1: outputs what it received; that is the flow's final output."""

    async def execute(self, context: ExecutionContext) -> NodeResult:
        return NodeResult(success=True, output_text=context.input_text)


def control_executors() -> dict[str, NodeExecutor]:
    """Executors the engine provides for its own control-flow node types."""
    return {"Start1": StartExecutor(), "End1": EndExecutor()}
