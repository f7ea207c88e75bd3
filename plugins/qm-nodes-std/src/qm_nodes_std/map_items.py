"""Map1's list: the ``items`` expression of a Map1 node, evaluated by the pack.

The engine runs the map (docs/map.md); this executor only computes its list,
with the same sandboxed expressions as Var1 and the decisions.
"""

from __future__ import annotations

from qm_nodes_std.base import NodeFailure, Problems, StdExecutor, storable, variables
from qm_nodes_std.expressions import Expression
from quartermaster_engine import ExecutionContext, NodeResult
from quartermaster_graph import GraphNode


class MapItemsExecutor(StdExecutor[Expression]):
    """Map1: evaluates metadata ``items`` (an expression over ``input``, ``memory``,
    ``outputs``, ``visit``) to the list the engine maps:
    ``map("Summaries", items="memory.docs", node="acme.Summarize")``."""

    node_type = "Map1"

    def plan(self, node: GraphNode) -> Expression:
        problems = Problems()
        expression = problems.expression(node.metadata.get("items"), "metadata 'items'")
        problems.raise_any()
        assert expression is not None
        return expression

    async def run(self, context: ExecutionContext, plan: Expression) -> NodeResult:
        value = plan.evaluate(variables(context, plan.names))
        if not isinstance(value, list | tuple):
            raise NodeFailure(f"'items' {plan.source!r} gave {type(value).__name__}, not a list")
        return NodeResult(data={"map_items": storable(value, "Map1 'items'")})
