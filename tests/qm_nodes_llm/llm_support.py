"""Helpers of the LLM node tests: graphs by node name, runners on the pack's executors, an
event recorder, and a scripted in-process provider."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

from qm_nodes_llm import EXECUTORS, LLMNodeSettings, LLMRequest, LLMResponse
from qm_nodes_llm.providers.base import ProviderSource
from qm_nodes_llm.tools import ToolSource
from quartermaster_engine import FlowEvent, FlowRunner, NodeStarted, SimpleNodeRegistry
from quartermaster_engine.testing import build_graph
from quartermaster_engine.testing.graphs import name_id
from quartermaster_graph import GraphSpec

E = TypeVar("E", bound=FlowEvent)


def node(node_type: str, fields: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    """A node spec: its type, its metadata, and GraphNode ``fields``."""
    return {"type": node_type, "metadata": metadata, **(fields or {})}


def graph(
    nodes: dict[str, str | dict[str, Any]], edges: Sequence[tuple[str, ...]], name: str = "g"
) -> GraphSpec:
    """Nodes by name (Start and End default to Start1 and End1) and (from, to[, label]) edges."""
    specs: dict[str, str | dict[str, Any]] = {"Start": "Start1"}
    specs.update(nodes)
    if "End" not in specs and any(e[1] == "End" for e in edges):
        specs["End"] = "End1"
    return build_graph(specs, edges, name=name)


def line(*named: tuple[str, str | dict[str, Any]]) -> GraphSpec:
    """Start -> each node in turn -> End."""
    nodes = dict(named)
    order = ["Start", *nodes, "End"]
    return graph(nodes, list(itertools.pairwise(order)))


def brief_answer() -> GraphSpec:
    """Start -> Answer (Instruction1, not streamed, with the request keys call events
    carry: model gpt-4o-mini, temperature 0.2, 64 output tokens, "Be brief.") -> End."""
    return line(
        (
            "Answer",
            node(
                "Instruction1",
                llm_model="gpt-4o-mini",
                llm_stream=False,
                llm_temperature=0.2,
                llm_max_output_tokens=64,
                llm_system_instruction="Be brief.",
            ),
        )
    )


def nid(name: str) -> UUID:
    return name_id(name)


def registry(
    settings: LLMNodeSettings | dict[str, Any] | None = None,
    *,
    providers: ProviderSource | None = None,
    tools: ToolSource | None = None,
) -> SimpleNodeRegistry:
    """Every LLM executor of the pack with ``settings`` (no plugin discovery for nodes)."""
    if isinstance(settings, dict):
        settings = LLMNodeSettings.model_validate(settings)
    executors: dict[str, Any] = {}
    for cls in EXECUTORS:
        extra: dict[str, Any] = {"tools": tools} if cls.node_type == "Agent1" and tools else {}
        executors[cls.node_type] = cls(settings, providers=providers, **extra)
    return SimpleNodeRegistry(executors)


def openai_settings(base_url: str, **provider: Any) -> dict[str, Any]:
    """LLM node settings that send every node to the fake server."""
    return {
        "provider": "openai",
        "providers": {"openai": {"base_url": base_url, "api_key": "sk-test", **provider}},
    }


def runner(spec: GraphSpec, reg: SimpleNodeRegistry, **kwargs: Any) -> FlowRunner:
    return FlowRunner(spec, reg, **kwargs)


@dataclass
class Recorder:
    """Collects events."""

    events: list[FlowEvent] = field(default_factory=list)

    def __call__(self, event: FlowEvent) -> None:
        self.events.append(event)

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def runs(self) -> list[str]:
        return [e.node_name for e in self.of(NodeStarted)]

    def types(self) -> list[str]:
        return [e.type for e in self.events]


class ScriptedProvider:
    """An in-process provider answering from a script; records each request."""

    name = "scripted"

    def __init__(self, answers: Sequence[str | LLMResponse | Callable[[LLMRequest], Any]]) -> None:
        self.answers = list(answers)
        self.requests: list[LLMRequest] = []

    def describe(self) -> str:
        return "scripted provider"

    def default_model(self) -> str | None:
        return "scripted-model"

    async def complete(
        self,
        request: LLMRequest,
        on_token: Callable[[str], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> LLMResponse:
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else ""
        if callable(answer):
            answer = answer(request)
        if isinstance(answer, LLMResponse):
            return answer
        if on_token is not None and request.stream:
            for word in answer.split(" "):
                on_token(word)
        return LLMResponse(text=answer, model=request.model or "scripted-model")
