"""Nodes that produce or pass on text: Static1, Text1, Blank1, Comment1, Break1, StaticMerge1,
and the variable nodes Var1 and TextToVariable1."""

from __future__ import annotations

from dataclasses import dataclass

from qm_nodes_std.base import (
    NodeFailure,
    Problems,
    StdExecutor,
    passthrough,
    storable,
    variables,
)
from qm_nodes_std.expressions import Expression
from qm_nodes_std.templates import Template
from quartermaster_engine import ExecutionContext, NodeResult
from quartermaster_graph import GraphNode, GraphSpec


class StaticExecutor(StdExecutor[str]):
    """Static1: outputs the fixed text of metadata ``static_text``.

    ``static("Greeting", "Hello!")`` outputs ``Hello!`` whatever its input.
    """

    node_type = "Static1"

    def plan(self, node: GraphNode) -> str:
        problems = Problems()
        text = problems.text(node.metadata, "static_text")
        problems.raise_any()
        return text

    async def run(self, context: ExecutionContext, plan: str) -> NodeResult:
        return NodeResult(output_text=plan)


class TextExecutor(StdExecutor[Template]):
    """Text1: renders the Jinja2 template of metadata ``text`` in a sandbox.

    The template sees ``input``, ``memory``, ``outputs`` and ``visit``:
    ``text("Reply", "Dear customer, about {{ memory.topic }}: {{ input }}")``.
    An unknown name or missing key fails the node, naming it.
    """

    node_type = "Text1"

    def plan(self, node: GraphNode) -> Template:
        problems = Problems()
        source = problems.text(node.metadata, "text")
        template = problems.template(source, "metadata 'text'")
        problems.raise_any()
        assert template is not None
        return template

    async def run(self, context: ExecutionContext, plan: Template) -> NodeResult:
        return NodeResult(output_text=plan.render(variables(context, plan.names)))


class BlankExecutor(StdExecutor[None]):
    """Blank1: passes its input on unchanged (a placeholder or a junction)."""

    node_type = "Blank1"

    def plan(self, node: GraphNode) -> None:
        return None

    async def run(self, context: ExecutionContext, plan: None) -> NodeResult:
        return passthrough(context)


class CommentExecutor(BlankExecutor):
    """Comment1: documentation (metadata ``comment``); passes its input on if it is reached."""

    node_type = "Comment1"


class BreakExecutor(StdExecutor[None]):
    """Break1: passes its input on and cuts the message history there.

    Its type default ``SkipThought1`` means its own history holds only its output,
    so a successor continuing the conversation (``ContinueThought1``) sees nothing
    before it. Metadata ``break_targets`` must be empty (break everything): 0.1.5's
    targeted breaks (``["tools"]``) are not supported.
    """

    node_type = "Break1"

    def plan(self, node: GraphNode) -> None:
        problems = Problems()
        targets = problems.items_of(node.metadata, "break_targets")
        if targets:
            problems.add(
                f"metadata 'break_targets' {targets!r} is not supported: only [] "
                "(cut the whole history) is"
            )
        problems.raise_any()

    async def run(self, context: ExecutionContext, plan: None) -> NodeResult:
        return passthrough(context)


class StaticMergeExecutor(StdExecutor[str]):
    """StaticMerge1: joins its inputs without an LLM.

    The output is metadata ``static_text`` (when not empty) as a first line, then
    the output of each predecessor that delivered, one after the other in the order
    of the incoming edges, separated by newlines.
    """

    node_type = "StaticMerge1"

    def plan(self, node: GraphNode) -> str:
        problems = Problems()
        text = problems.text(node.metadata, "static_text")
        problems.raise_any()
        return text

    async def run(self, context: ExecutionContext, plan: str) -> NodeResult:
        parts = [plan] if plan else []
        if context.input_text:
            parts.append(context.input_text)
        return NodeResult(output_text="\n".join(parts))


@dataclass(frozen=True, slots=True)
class VarPlan:
    variable: str
    expression: Expression


class VarExecutor(StdExecutor[VarPlan]):
    """Var1: evaluates metadata ``expression`` and stores the value in flow memory under
    metadata ``name``; passes its input on.

    ``var("Count words", variable="words", expression="len(input.split())")``.
    """

    node_type = "Var1"

    def plan(self, node: GraphNode) -> VarPlan:
        problems = Problems()
        variable = problems.text(node.metadata, "name", required=True)
        expression = problems.expression(node.metadata.get("expression"), "metadata 'expression'")
        problems.raise_any()
        assert expression is not None
        return VarPlan(variable, expression)

    async def run(self, context: ExecutionContext, plan: VarPlan) -> NodeResult:
        value = plan.expression.evaluate(variables(context, plan.expression.names))
        stored = storable(value, f"variable {plan.variable!r}")
        return passthrough(context, memory_updates={plan.variable: stored})


@dataclass(frozen=True, slots=True)
class TextToVariablePlan:
    variable: str
    source: str


class TextToVariableExecutor(StdExecutor[TextToVariablePlan]):
    """TextToVariable1: stores text in flow memory under metadata ``variable``; passes its
    input on.

    The text is the node's input, or, when metadata ``source`` names a predecessor,
    that predecessor's output: ``text_to_variable("Keep", variable="draft")``.
    """

    node_type = "TextToVariable1"

    def plan(self, node: GraphNode) -> TextToVariablePlan:
        problems = Problems()
        variable = problems.text(node.metadata, "variable", required=True)
        source = problems.text(node.metadata, "source")
        problems.raise_any()
        return TextToVariablePlan(variable, source)

    def check(self, node: GraphNode, graph: GraphSpec, plan: TextToVariablePlan) -> list[str]:
        if not plan.source:
            return []
        names = [p.name for p in graph.get_predecessors(node.id)]
        if plan.source in names:
            return []
        listed = ", ".join(repr(n) for n in names) or "none"
        return [f"metadata 'source' {plan.source!r} is not a predecessor; predecessors: {listed}"]

    async def run(self, context: ExecutionContext, plan: TextToVariablePlan) -> NodeResult:
        text = context.input_text
        if plan.source:
            outputs = context.predecessor_outputs
            if plan.source not in outputs:
                delivered = ", ".join(repr(n) for n in outputs) or "none"
                raise NodeFailure(
                    f"source {plan.source!r} delivered no output to this node "
                    f"(delivered: {delivered})"
                )
            text = outputs[plan.source]
        return passthrough(context, memory_updates={plan.variable: text})
