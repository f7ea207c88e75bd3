"""Nodes that pick a branch with an expression: If1, Switch1, StaticDecision1.

Each passes its input on to the branch it picks; the engine fails the node, listing
the valid choices, if the pick matches no outgoing edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from qm_nodes_std.base import NodeFailure, Problems, StdExecutor, variables
from qm_nodes_std.expressions import Expression
from quartermaster_engine import ExecutionContext, NodeResult
from quartermaster_graph import GraphNode


def _label(value: bool) -> str:
    return "true" if value else "false"


class IfExecutor(StdExecutor[Expression]):
    """If1: metadata ``if_expression`` picks the edge labelled ``true`` or ``false``
    (by the truth of its value).

    ``if_node("Urgent?", expression='"urgent" in input.lower()')`` with branches
    ``on("true")`` and ``on("false")``.
    """

    node_type = "If1"

    def plan(self, node: GraphNode) -> Expression:
        problems = Problems()
        expression = problems.expression(
            node.metadata.get("if_expression"), "metadata 'if_expression'"
        )
        problems.raise_any()
        assert expression is not None
        return expression

    async def run(self, context: ExecutionContext, plan: Expression) -> NodeResult:
        value = plan.evaluate(variables(context, plan.names))
        label = _label(bool(value))
        return NodeResult(output_text=context.input_text, picked_node=label, data={"picked": label})


@dataclass(frozen=True, slots=True)
class SwitchPlan:
    cases: tuple[tuple[str, Expression], ...]
    default: str

    def describe(self) -> str:
        return ", ".join(f"{label} ({expr.source})" for label, expr in self.cases)


class SwitchExecutor(StdExecutor[SwitchPlan]):
    """Switch1: the first case of metadata ``cases`` (``[{"label", "expression"}]``,
    in order) whose expression is true picks its label; if none is, metadata
    ``default`` (a label) does. No true case and no default fails the node,
    listing the cases. (``GraphBuilder.switch`` turns 0.1.5's ``edge_id`` and
    ``default_edge_id`` into ``label`` and ``default``.)
    """

    node_type = "Switch1"

    def plan(self, node: GraphNode) -> SwitchPlan:
        meta = node.metadata
        problems = Problems()
        if meta.get("cases") is None:
            problems.add("metadata 'cases' is required")
        raw = problems.items_of(meta, "cases")
        if meta.get("cases") == []:
            problems.add("metadata 'cases' is empty")
        cases: list[tuple[str, Expression]] = []
        for index, case in enumerate(raw):
            where = f"metadata 'cases'[{index}]"
            if not isinstance(case, Mapping):
                problems.add(f"{where} must be a mapping with 'label' and 'expression'")
                continue
            label = case.get("label")
            if not isinstance(label, str) or not label:
                problems.add(f"{where} has no 'label'")
            expression = problems.expression(case.get("expression"), f"{where} 'expression'")
            if isinstance(label, str) and label and expression is not None:
                cases.append((label, expression))
        default = meta.get("default") or ""
        if not isinstance(default, str):
            problems.add(f"metadata 'default' must be a label, got {type(default).__name__}")
            default = ""
        problems.raise_any()
        return SwitchPlan(tuple(cases), default)

    async def run(self, context: ExecutionContext, plan: SwitchPlan) -> NodeResult:
        for label, expression in plan.cases:
            if expression.evaluate(variables(context, expression.names)):
                return NodeResult(
                    output_text=context.input_text, picked_node=label, data={"picked": label}
                )
        if plan.default:
            return NodeResult(
                output_text=context.input_text,
                picked_node=plan.default,
                data={"picked": plan.default},
            )
        raise NodeFailure(f"no case matched and there is no default; cases: {plan.describe()}")


class StaticDecisionExecutor(StdExecutor[Expression]):
    """StaticDecision1: metadata ``expression`` picks the branch (0.1.5's expression
    decision). A boolean value picks the edge labelled ``true`` or ``false``, like If1;
    a string or a number picks the branch of that label.

    ``static_decision("Tier", expression='memory["tier"]')`` with ``on("gold")`` ...
    """

    node_type = "StaticDecision1"

    def plan(self, node: GraphNode) -> Expression:
        problems = Problems()
        expression = problems.expression(node.metadata.get("expression"), "metadata 'expression'")
        problems.raise_any()
        assert expression is not None
        return expression

    async def run(self, context: ExecutionContext, plan: Expression) -> NodeResult:
        value = plan.evaluate(variables(context, plan.names))
        if isinstance(value, bool):
            label = _label(value)
        elif isinstance(value, str | int | float):
            label = str(value)
        else:
            raise NodeFailure(
                f"expression {plan.source!r} gave {type(value).__name__} {value!r}; "
                "a decision needs a boolean, a string or a number"
            )
        return NodeResult(output_text=context.input_text, picked_node=label, data={"picked": label})
