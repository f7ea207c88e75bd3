"""Decision1: the model picks the branch, constrained to the outgoing edge labels."""

from __future__ import annotations

from dataclasses import dataclass

from qm_nodes_llm.nodes.base import Binding, LLMExecutor, NodeFailure, NodePlan, Problems
from qm_nodes_llm.prompt import ask, prompt
from quartermaster_engine import ExecutionContext, NodeResult
from quartermaster_graph import GraphNode, GraphSpec, TraverseOut


@dataclass(frozen=True)
class DecisionPlan:
    labels: tuple[str, ...]
    prefix: str
    suffix: str

    def question(self) -> str:
        lines = [self.prefix] if self.prefix else []
        lines.append("Answer with exactly one of: " + ", ".join(self.labels) + ".")
        if self.suffix:
            lines.append(self.suffix)
        return "\n".join(lines)


def edge_labels(node: GraphNode, graph: GraphSpec) -> list[str]:
    """The answers the node can give: its outgoing edges' labels (the target's name for an
    unlabeled edge), in edge order."""
    labels: list[str] = []
    for edge in graph.get_edges_from(node.id):
        label = edge.label
        if not label:
            target = graph.get_node(edge.target_id)
            label = target.name if target is not None and target.name else str(edge.target_id)
        if label not in labels:
            labels.append(label)
    return labels


class DecisionExecutor(LLMExecutor[DecisionPlan]):
    """Decision1: the model's answer is constrained to the labels of the node's outgoing
    edges (a JSON-schema enum or a forced tool for the ``openai`` provider, a forced tool
    for ``anthropic``, a grammar for ``llamacpp``) and picks that branch.

    An answer outside the labels (an endpoint that ignores the constraint) is a node
    failure naming the answer and the labels, so the node's error strategy (RETRY)
    applies; there is no fuzzy matching and no default branch. The node's output is
    its input text, passed on to the branch; ``data["picked"]`` is the label.

    Prompt: the node's input messages (the builder's default ThoughtType,
    UsePreviousThought1, gives the conversation so far), then the question:
    metadata ``prefix_message``, "Answer with exactly one of: <labels>.",
    ``suffix_message``. Metadata ``options`` (the builder's), when given, must equal
    the edge labels.
    """

    node_type = "Decision1"

    def plan(self, node: GraphNode, graph: GraphSpec, problems: Problems) -> DecisionPlan:
        meta = node.metadata
        if node.traverse_out is not TraverseOut.SPAWN_PICKED:
            # Any other traverse_out ignores the pick: every branch would run.
            problems.add(
                f"a decision must pick one branch: traverse_out must be SpawnPickedNode, "
                f"not {node.traverse_out.value}"
            )
        labels = edge_labels(node, graph)
        if not labels:
            problems.add("a decision needs outgoing edges, one per answer (labelled)")
        options = meta.get("options")
        if options:
            if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
                problems.add("metadata 'options' must be a list of strings")
            elif sorted(options) != sorted(labels):
                problems.add(
                    f"metadata 'options' {options} does not match the outgoing edge labels {labels}"
                )
        return DecisionPlan(
            tuple(labels),
            problems.text(meta, "prefix_message"),
            problems.text(meta, "suffix_message"),
        )

    async def run(
        self, context: ExecutionContext, plan: NodePlan[DecisionPlan], binding: Binding
    ) -> NodeResult:
        own = plan.own
        assert own is not None  # plans without problems have one
        labels = list(own.labels)
        messages = ask(prompt(context), own.question())
        request = self.request(plan, binding, messages, choices=labels)
        response = await self.call(context, binding, request)
        answer = response.text
        if answer not in labels:
            listed = ", ".join(repr(label) for label in labels)
            raise NodeFailure(
                f"the model answered {answer!r}, which is not one of the labels {listed} "
                f"({binding.provider.describe()}, model {response.model})"
            )
        return NodeResult(
            output_text=context.input_text,
            picked_node=answer,
            data={"picked": answer, "llm": self.llm_data(binding, response)},
        )
