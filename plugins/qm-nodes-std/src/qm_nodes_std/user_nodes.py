"""Nodes that ask a person: User1 and UserDecision1 (UserForm1 is in `forms`).

Each pauses the flow (``wait_for_user``) with a prompt; on resume it runs again with
``context.user_input`` set to the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from qm_nodes_std.base import Problems, StdExecutor, variables
from qm_nodes_std.templates import Template
from quartermaster_engine import ExecutionContext, NodeResult
from quartermaster_graph import GraphNode, GraphSpec

#: The prompt of a User1 node with no prompt and no input.
DEFAULT_PROMPT = "Your answer?"


def _render(context: ExecutionContext, prompts: tuple[Template, ...]) -> str:
    text = "\n".join(p.render(variables(context, p.names)) for p in prompts)
    return text or context.input_text or DEFAULT_PROMPT


class UserExecutor(StdExecutor[tuple[Template, ...]]):
    """User1: pauses with a prompt; the answer becomes the node's output.

    The prompt is metadata ``text_snippets`` (a list of templates, rendered like
    Text1's and joined with newlines), else the node's input, else "Your answer?".
    ``user("Ask", prompts=["What is your order number?"])``.
    """

    node_type = "User1"

    def plan(self, node: GraphNode) -> tuple[Template, ...]:
        problems = Problems()
        prompts: list[Template] = []
        for index, snippet in enumerate(problems.items_of(node.metadata, "text_snippets")):
            template = problems.template(snippet, f"metadata 'text_snippets'[{index}]")
            if template is not None:
                prompts.append(template)
        problems.raise_any()
        return tuple(prompts)

    async def run(self, context: ExecutionContext, plan: tuple[Template, ...]) -> NodeResult:
        if context.user_input is None:
            return NodeResult(wait_for_user=True, user_prompt=_render(context, plan))
        return NodeResult(output_text=context.user_input)


@dataclass(frozen=True, slots=True)
class DecisionPlan:
    prompt: Template | None


def options_of(node: GraphNode, graph: GraphSpec) -> list[str]:
    """A UserDecision1's options: the labels of its outgoing edges (the target's name
    for an unlabeled edge), in edge order."""
    options: list[str] = []
    for edge in graph.get_edges_from(node.id):
        option = edge.label
        if not option:
            target = graph.get_node(edge.target_id)
            option = target.name if target is not None else str(edge.target_id)
        if option not in options:
            options.append(option)
    return options


def match_option(answer: str, options: list[str]) -> str | None:
    """The option ``answer`` names: exactly, else ignoring case and surrounding space."""
    if answer in options:
        return answer
    wanted = answer.strip().casefold()
    found = [o for o in options if o.strip().casefold() == wanted]
    return found[0] if len(found) == 1 else None


class UserDecisionExecutor(StdExecutor[DecisionPlan]):
    """UserDecision1: pauses with the labels of its outgoing edges as options; the answer
    picks that branch, and the node passes its input on to it. An answer that is no
    option asks again, naming the answer and the options.

    The prompt is metadata ``prompt`` (a template, optional), else the node's input,
    else "Choose one of: ...". ``user_decision("Approve?").on("approve")...on("reject")``.
    """

    node_type = "UserDecision1"

    def plan(self, node: GraphNode) -> DecisionPlan:
        problems = Problems()
        source = problems.text(node.metadata, "prompt")
        template = problems.template(source, "metadata 'prompt'") if source else None
        problems.raise_any()
        return DecisionPlan(template)

    def check(self, node: GraphNode, graph: GraphSpec, plan: DecisionPlan) -> list[str]:
        if not graph.get_edges_from(node.id):
            return ["it has no outgoing edges, so there is nothing to choose"]
        return []

    def _prompt(self, context: ExecutionContext, plan: DecisionPlan, options: list[str]) -> str:
        if plan.prompt is not None:
            text = plan.prompt.render(variables(context, plan.prompt.names))
            if text:
                return text
        return context.input_text or f"Choose one of: {', '.join(options)}"

    async def run(self, context: ExecutionContext, plan: DecisionPlan) -> NodeResult:
        options = options_of(context.current_node, context.graph)
        answer = context.user_input
        if answer is None:
            return NodeResult(
                wait_for_user=True,
                user_prompt=self._prompt(context, plan, options),
                user_options=options,
            )
        choice = match_option(answer, options)
        if choice is None:
            return NodeResult(
                wait_for_user=True,
                user_prompt=(
                    f"{answer!r} is not one of the options: {', '.join(options)}\n"
                    + self._prompt(context, plan, options)
                ),
                user_options=options,
            )
        return NodeResult(
            output_text=context.input_text, picked_node=choice, data={"choice": choice}
        )
