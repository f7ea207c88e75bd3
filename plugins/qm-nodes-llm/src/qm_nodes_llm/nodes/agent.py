"""Agent1: the model answers, calling tools in a loop until it gives a final answer."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from qm_nodes_llm.events import ToolCallFinished, ToolCallStarted, emit_event
from qm_nodes_llm.nodes.base import Binding, LLMExecutor, NodeFailure, NodePlan, Problems
from qm_nodes_llm.prompt import prompt
from qm_nodes_llm.providers.base import ProviderSource
from qm_nodes_llm.providers.ollama import probe_ollama
from qm_nodes_llm.settings import LLMNodeSettings
from qm_nodes_llm.tools import PluginTools, Tool, ToolError, ToolSource, UnknownToolError
from qm_nodes_llm.types import ChatMessage, ToolCall
from quartermaster_engine import ExecutionContext, NodeResult
from quartermaster_graph import GraphNode, GraphSpec

DEFAULT_MAX_ITERATIONS = 25


@dataclass(frozen=True)
class AgentPlan:
    tools: tuple[str, ...]
    max_iterations: int


def allowed_tools(meta: Mapping[str, Any], problems: Problems) -> tuple[str, ...]:
    """The node's tool allow-list: ``program_version_ids`` (what the builder's ``tools=``
    writes) or ``tools`` (the same, for hand-written graphs)."""
    found: list[str] = []
    for key in ("program_version_ids", "tools"):
        value = meta.get(key)
        if value in (None, []):
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.add(f"metadata {key!r} must be a list of tool names")
            continue
        found.extend(v for v in value if v not in found)
    return tuple(found)


class AgentExecutor(LLMExecutor[AgentPlan]):
    """Agent1: a tool loop. Each turn the model may call tools; every call runs (its
    ToolCallStarted / ToolCallFinished events go to the flow's listeners), its result
    is added to the conversation as a tool message, and the model is asked again,
    until it answers without calling tools. That answer (streamed) is the output.

    Metadata: the ``llm_*`` keys; ``program_version_ids`` (or ``tools``): the names of
    the tools this node may call, from those registered through
    ``qm_register_llm_tools``; ``max_iterations`` (default 25): model turns at most,
    after which the node fails. A call to a tool outside the allow-list, with invalid
    arguments, or that raises is reported to the model as the call's result (with
    ``error`` in ToolCallFinished); it does not fail the node.
    """

    node_type = "Agent1"

    def __init__(
        self,
        settings: LLMNodeSettings | None = None,
        *,
        providers: ProviderSource | None = None,
        tools: ToolSource | None = None,
        environ: Mapping[str, str] | None = None,
        probe: Callable[[str], list[str] | None] = probe_ollama,
    ) -> None:
        super().__init__(settings, providers=providers, environ=environ, probe=probe)
        self.tools: ToolSource = tools if tools is not None else PluginTools(self.settings.tools)

    def memory_reads(self, node: GraphNode) -> tuple[str, ...] | None:
        """Unknown: the tools an agent calls may read flow memory."""
        return None

    def plan(self, node: GraphNode, graph: GraphSpec, problems: Problems) -> AgentPlan:
        meta = node.metadata
        names = allowed_tools(meta, problems)
        for name in names:
            try:
                self.tools.get(name)
            except UnknownToolError as exc:
                problems.add(str(exc))
            except Exception as exc:  # a tool factory that fails is a settings problem
                problems.add(f"tool {name!r} cannot be created: {type(exc).__name__}: {exc}")
        iterations = problems.integer(meta, "max_iterations", DEFAULT_MAX_ITERATIONS, 1)
        return AgentPlan(names, iterations)

    async def run(
        self, context: ExecutionContext, plan: NodePlan[AgentPlan], binding: Binding
    ) -> NodeResult:
        own = plan.own
        assert own is not None
        tools = {name: self.tools.get(name) for name in own.tools}
        messages: list[ChatMessage] = prompt(context)
        specs = [tool.spec() for tool in tools.values()]
        history: list[dict[str, Any]] = []
        usage: dict[str, int] = {}
        for iteration in range(1, own.max_iterations + 1):
            request = self.request(plan, binding, list(messages), tools=specs)
            response = await self.call(context, binding, request)
            for key, value in response.usage.items():
                usage[key] = usage.get(key, 0) + value
            if not response.tool_calls:
                data = self.llm_data(binding, response)
                if usage:
                    data["usage"] = usage
                return NodeResult(
                    output_text=response.text,
                    data={"llm": data, "iterations": iteration, "tool_calls": history},
                )
            messages.append(ChatMessage("assistant", response.text, tool_calls=response.tool_calls))
            for call in response.tool_calls:
                result, error = await self._call_tool(context, tools, call, iteration)
                history.append(
                    {
                        "tool": call.name,
                        "arguments": call.arguments,
                        "result": result,
                        "error": error,
                    }
                )
                messages.append(ChatMessage("tool", result, tool_call_id=call.id, name=call.name))
        raise NodeFailure(
            f"the agent made {own.max_iterations} model calls (max_iterations) without a final "
            f"answer; last tool calls: {', '.join(c['tool'] for c in history[-3:])}"
        )

    async def _call_tool(
        self,
        context: ExecutionContext,
        tools: Mapping[str, Tool],
        call: ToolCall,
        iteration: int,
    ) -> tuple[str, str | None]:
        node = context.current_node
        emit_event(
            context,
            ToolCallStarted(
                flow_id=context.flow_id,
                node_id=node.id,
                node_name=node.name,
                tool=call.name,
                call=call.id,
                arguments=dict(call.arguments),
                iteration=iteration,
            ),
        )
        started = time.perf_counter()
        error: str | None = None
        tool = tools.get(call.name)
        if tool is None:
            allowed = ", ".join(tools) or "none"
            error = f"tool {call.name!r} is not available to this agent; available: {allowed}"
            result = f"error: {error}"
        else:
            try:
                result = await tool.invoke(call.arguments)
            except ToolError as exc:
                error = str(exc)
                result = f"error: {error}"
        emit_event(
            context,
            ToolCallFinished(
                flow_id=context.flow_id,
                node_id=node.id,
                node_name=node.name,
                tool=call.name,
                call=call.id,
                result=result,
                error=error,
                duration_seconds=time.perf_counter() - started,
            ),
        )
        return result, error
