"""Nodes that pick a branch with an expression: If1, Switch1, StaticDecision1.

Each passes its input on to the branch it picks; the engine fails the node, listing
the valid choices, if the pick matches no outgoing edge. Which outgoing edges each
node type needs is checked here, before a flow starts (core's graph validation
only checks what holds for every node type).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from qm_nodes_std.base import IdentityCache, NodeFailure, Problems, StdExecutor, variables
from qm_nodes_std.expressions import Expression
from quartermaster_engine import ExecutionContext, NodeResult
from quartermaster_graph import GraphEdge, GraphNode, GraphSpec

_IF_LABELS = ("true", "false")


def _label(value: bool) -> str:
    return "true" if value else "false"


@dataclass(frozen=True, slots=True)
class IfBranches:
    """What an If1 node answers for a true and for a false value."""

    true: str
    false: str


def if_branches(node: GraphNode, graph: GraphSpec) -> IfBranches | list[str]:
    """The node's two branches, or every problem with its outgoing edges.

    Edges labelled ``true`` and ``false`` name the branches. Without those labels,
    two edges told apart by ``is_main`` are 0.1.5's If1: the ``is_main=True`` edge
    is the true branch, the other the false one (picked by target id, whatever
    their labels say).
    """
    edges = graph.get_edges_from(node.id)
    if any(edge.label in _IF_LABELS for edge in edges):
        problems = [
            f"its edge to {_target(graph, edge)} is "
            + (f"labelled '{edge.label}'" if edge.label else "unlabelled")
            + "; If1 edges are labelled 'true' or 'false'"
            for edge in edges
            if edge.label not in _IF_LABELS
        ]
        labels = {edge.label for edge in edges}
        problems += [f"no outgoing edge labelled '{x}'" for x in _IF_LABELS if x not in labels]
        return problems or IfBranches("true", "false")
    main = [edge for edge in edges if edge.is_main]
    other = [edge for edge in edges if not edge.is_main]
    if len(main) == 1 and len(other) == 1:
        return IfBranches(str(main[0].target_id), str(other[0].target_id))
    return [
        f"it has {len(edges)} outgoing edge{'' if len(edges) == 1 else 's'} and none labelled "
        "'true' or 'false'; If1 needs an edge labelled 'true' and one labelled 'false', or "
        "(as in 0.1.5) exactly two edges, the true branch with is_main=True and the false "
        "one with is_main=False"
    ]


def _target(graph: GraphSpec, edge: GraphEdge) -> str:
    target = graph.get_node(edge.target_id)
    return f"'{target.name}'" if target is not None and target.name else str(edge.target_id)


class IfExecutor(StdExecutor[Expression]):
    """If1: metadata ``if_expression`` picks the edge labelled ``true`` or ``false``
    (by the truth of its value).

    In a graph without those labels, as 0.1.5 drew it, the ``is_main=True`` edge is
    the true branch and the other edge the false one.

    ``if_node("Urgent?", expression='"urgent" in input.lower()')`` with branches
    ``on("true")`` and ``on("false")``.
    """

    node_type = "If1"

    def __init__(self) -> None:
        super().__init__()
        self._branches: IdentityCache[GraphNode, IfBranches | list[str]] = IdentityCache()

    def plan(self, node: GraphNode) -> Expression:
        problems = Problems()
        expression = problems.expression(
            node.metadata.get("if_expression"), "metadata 'if_expression'"
        )
        problems.raise_any()
        assert expression is not None
        return expression

    def check(self, node: GraphNode, graph: GraphSpec, plan: Expression) -> list[str]:
        branches = if_branches(node, graph)
        return branches if isinstance(branches, list) else []

    async def run(self, context: ExecutionContext, plan: Expression) -> NodeResult:
        node = context.current_node
        branches = self._branches.get(node, lambda: if_branches(node, context.graph))
        if isinstance(branches, list):
            raise NodeFailure("; ".join(branches))
        value = plan.evaluate(variables(context, plan.names))
        label = _label(bool(value))
        picked = branches.true if value else branches.false
        return NodeResult(
            output_text=context.input_text, picked_node=picked, data={"picked": label}
        )


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
                hint = (
                    " (0.1.5's 'edge_id' is read as the label by GraphBuilder.switch(); "
                    "graph files name it 'label')"
                    if "edge_id" in case
                    else ""
                )
                problems.add(f"{where} has no 'label'{hint}")
            expression = problems.expression(case.get("expression"), f"{where} 'expression'")
            if isinstance(label, str) and label and expression is not None:
                cases.append((label, expression))
        default = meta.get("default") or ""
        if not isinstance(default, str):
            problems.add(f"metadata 'default' must be a label, got {type(default).__name__}")
            default = ""
        problems.raise_any()
        return SwitchPlan(tuple(cases), default)

    def check(self, node: GraphNode, graph: GraphSpec, plan: SwitchPlan) -> list[str]:
        """Every case label and the default pick an outgoing edge: by its label, or
        by its target's name, as the engine matches picks."""
        answers = {edge.label for edge in graph.get_edges_from(node.id) if edge.label}
        answers.update(t.name for t in graph.get_successors(node.id) if t.name)
        wanted: dict[str, str] = {}  # label -> how to name it
        for label, _ in plan.cases:
            wanted.setdefault(label, f"case '{label}'")
        if plan.default:
            wanted.setdefault(plan.default, f"default '{plan.default}'")
        return [
            f"{what} has no outgoing edge labelled '{label}' (nor a successor of that name)"
            for label, what in wanted.items()
            if label not in answers
        ]

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
