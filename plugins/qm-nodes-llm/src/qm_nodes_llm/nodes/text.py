"""Nodes that answer in text: Instruction1, Summarize1 and Merge1."""

from __future__ import annotations

from dataclasses import dataclass

from qm_nodes_llm.nodes.base import Binding, LLMExecutor, NodePlan, Problems
from qm_nodes_llm.prompt import conversation, prompt, system_then, transcript
from quartermaster_engine import ExecutionContext, NodeResult
from quartermaster_graph import GraphNode, GraphSpec


class InstructionExecutor(LLMExecutor[None]):
    """Instruction1: the model answers the node's prompt; the answer streams as tokens and is
    the node's output.

    Prompt: the node's input messages (its ThoughtType and MessageType) with its own
    system instruction; when they hold no user message, the node's input text is
    the user message. Metadata: the ``llm_*`` keys.
    """

    node_type = "Instruction1"

    async def run(
        self, context: ExecutionContext, plan: NodePlan[None], binding: Binding
    ) -> NodeResult:
        response = await self.call(context, binding, self.request(plan, binding, prompt(context)))
        return NodeResult(output_text=response.text, data={"llm": self.llm_data(binding, response)})


class SummarizeExecutor(LLMExecutor[None]):
    """Summarize1: the model condenses the conversation the node receives.

    The conversation (the input messages, else the input text) is sent as one user
    message, a ``role: text`` transcript, under the node's system instruction (the
    builder's default: "Summarize the given conversation concisely."), so the model
    summarises it instead of continuing it.
    """

    node_type = "Summarize1"

    async def run(
        self, context: ExecutionContext, plan: NodePlan[None], binding: Binding
    ) -> NodeResult:
        text = transcript(conversation(context)) or context.input_text
        messages = system_then(context, text)
        response = await self.call(context, binding, self.request(plan, binding, messages))
        return NodeResult(output_text=response.text, data={"llm": self.llm_data(binding, response)})


@dataclass(frozen=True)
class MergePlan:
    prefix: str
    suffix: str


class MergeExecutor(LLMExecutor[MergePlan]):
    """Merge1 (waits for all its inputs): the model combines the outputs of the branches.

    One user message: metadata ``prefix_message`` (default "Compress following
    conversations into one"), each delivering branch's output under its node's name,
    then ``suffix_message``.
    """

    node_type = "Merge1"

    def plan(self, node: GraphNode, graph: GraphSpec, problems: Problems) -> MergePlan:
        meta = node.metadata
        return MergePlan(
            problems.text(meta, "prefix_message", "Compress following conversations into one"),
            problems.text(meta, "suffix_message"),
        )

    async def run(
        self, context: ExecutionContext, plan: NodePlan[MergePlan], binding: Binding
    ) -> NodeResult:
        own = plan.own or MergePlan("", "")
        parts = [own.prefix] if own.prefix else []
        outputs = context.predecessor_outputs or {"input": context.input_text}
        parts.extend(f"[{name}]\n{text}" for name, text in outputs.items())
        if own.suffix:
            parts.append(own.suffix)
        messages = system_then(context, "\n\n".join(parts))
        response = await self.call(context, binding, self.request(plan, binding, messages))
        return NodeResult(output_text=response.text, data={"llm": self.llm_data(binding, response)})
