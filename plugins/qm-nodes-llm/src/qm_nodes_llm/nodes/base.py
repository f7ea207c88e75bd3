"""What every LLM node executor shares: reading the node's metadata once, choosing the
provider and model, building the request, streaming tokens, reporting failures."""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from qm_nodes_llm.detect import NoProviderError, detect_provider
from qm_nodes_llm.events import LLMCallFinished, LLMCallStarted
from qm_nodes_llm.providers.base import (
    LLMProvider,
    PluginProviders,
    ProviderSource,
    UnknownProviderError,
)
from qm_nodes_llm.providers.ollama import probe_ollama
from qm_nodes_llm.settings import LLMNodeSettings, NodeLLMOptions, read_options
from qm_nodes_llm.types import ChatMessage, LLMRequest, LLMResponse, ProviderError
from quartermaster_engine import ExecutionContext, NodeResult
from quartermaster_graph import GraphNode, GraphSpec

P = TypeVar("P")

#: Numbers the model calls of this process (`LLMCallStarted.call`).
_calls = itertools.count(1)


class NodeFailure(RuntimeError):
    """The node fails with this message (the node's error strategy applies)."""


class Problems:
    """Collects a node's settings problems."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)

    def text(self, meta: Mapping[str, Any], key: str, default: str = "") -> str:
        value = meta.get(key, default)
        if value is None:
            return default
        if not isinstance(value, str):
            self.add(f"metadata {key!r} must be a string, got {type(value).__name__}")
            return default
        return value

    def integer(self, meta: Mapping[str, Any], key: str, default: int, minimum: int) -> int:
        value = meta.get(key, default)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.add(f"metadata {key!r} must be an integer >= {minimum}, got {value!r}")
            return default
        return value


@dataclass(frozen=True)
class NodePlan(Generic[P]):
    """A node's metadata, read and checked once."""

    options: NodeLLMOptions
    own: P | None
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Binding:
    """The provider and model a node calls, and why (``source``)."""

    name: str
    provider: LLMProvider
    model: str | None
    source: str


class LLMExecutor(Generic[P]):
    """Base of the pack's executors.

    ``settings`` come from ``[nodes."<type>"]``; ``providers`` and (for Agent1) tools
    default to what installed plugins register. The provider of a node is, in order:
    a forced one (``force_provider``), the node's ``llm_provider``, the settings'
    ``provider``, else detection (`qm_nodes_llm.detect`). The model: a forced one,
    the node's ``llm_model``, the settings' ``model``, detection's, else the
    provider's default.
    """

    node_type: ClassVar[str]

    def __init__(
        self,
        settings: LLMNodeSettings | None = None,
        *,
        providers: ProviderSource | None = None,
        environ: Mapping[str, str] | None = None,
        probe: Callable[[str], list[str] | None] = probe_ollama,
    ) -> None:
        self.settings = settings if settings is not None else LLMNodeSettings()
        self.providers: ProviderSource = providers if providers is not None else PluginProviders()
        self._environ = environ
        self._probe = probe
        self._plans: dict[int, tuple[weakref.ref[GraphNode], int, NodePlan[P]]] = {}
        self._bindings: dict[tuple[str, str], Binding] = {}
        self._lock = threading.Lock()

    # -- to implement ------------------------------------------------------------

    def plan(self, node: GraphNode, graph: GraphSpec, problems: Problems) -> P | None:
        """Read the node type's own metadata; add problems instead of raising."""
        return None

    async def run(
        self, context: ExecutionContext, plan: NodePlan[P], binding: Binding
    ) -> NodeResult:
        raise NotImplementedError

    # -- plans ---------------------------------------------------------------------

    def node_plan(self, node: GraphNode, graph: GraphSpec) -> NodePlan[P]:
        key = id(node)
        hit = self._plans.get(key)
        if hit is not None and hit[0]() is node and hit[1] == id(graph):
            return hit[2]
        read = read_options(node.metadata)
        problems = Problems()
        problems.items.extend(read.problems)
        own = self.plan(node, graph, problems)
        built: NodePlan[P] = NodePlan(read.options, own, problems.items)
        plans = self._plans

        def drop(ref: weakref.ref[GraphNode]) -> None:
            current = plans.get(key)
            if current is not None and current[0] is ref:
                del plans[key]

        plans[key] = (weakref.ref(node, drop), id(graph), built)
        return built

    def memory_reads(self, node: GraphNode) -> tuple[str, ...] | None:
        """No flow memory: an LLM node reads its input messages only (a memory value
        it is given comes as an input message, `MessageType.VARIABLE`). This lets a
        fork reuse its answer when only memory it does not read changed
        (`quartermaster_engine.nodes.ReadsMemory`)."""
        return ()

    def validate_node(self, node: GraphNode, graph: GraphSpec) -> list[str]:
        """Every problem of the node's settings, and whether a provider can serve it
        (detection runs here, so a missing provider is reported before the flow starts)."""
        plan = self.node_plan(node, graph)
        if plan.problems:
            return list(plan.problems)
        try:
            self.bind(plan.options)
        except (ProviderError, NoProviderError, UnknownProviderError) as exc:
            return [str(exc)]
        return []

    def limit_keys(self, node: GraphNode, graph: GraphSpec) -> list[str]:
        """``llm:{provider}:{model}`` (the provider's default model: ``default``), the
        key ``[limits."llm:..."]`` tables limit across processes (docs/limits.md);
        none for a node whose settings are wrong (its pre-flight says why)."""
        plan = self.node_plan(node, graph)
        if plan.problems:
            return []
        try:
            binding = self.bind(plan.options)
        except (ProviderError, NoProviderError, UnknownProviderError):
            return []
        return [f"llm:{binding.name}:{binding.model or 'default'}"]

    # -- provider and model ------------------------------------------------------

    def bind(self, options: NodeLLMOptions) -> Binding:
        """The provider and model for a node with these options."""
        key = (options.provider, options.model)
        hit = self._bindings.get(key)
        if hit is not None:
            return hit
        with self._lock:
            hit = self._bindings.get(key)
            if hit is None:
                hit = self._bind(options)
                self._bindings[key] = hit
            return hit

    def _bind(self, options: NodeLLMOptions) -> Binding:
        s = self.settings
        detected_settings: dict[str, Any] = {}
        detected_model: str | None = None
        if s.force_provider and s.provider:
            name, source = s.provider, "forced"
        elif options.provider:
            name, source = options.provider, "node"
        elif s.provider:
            name, source = s.provider, "settings"
        else:
            found = detect_provider(environ=self._environ, probe=self._probe)
            name, source = found.provider, found.source
            detected_settings, detected_model = found.settings, found.model
        provider_settings = {**detected_settings, **s.providers.get(name, {})}
        provider = self.providers.get(name, provider_settings, s.config_dir)
        if s.force_model and s.model:
            model: str | None = s.model
        else:
            model = options.model or s.model or detected_model or provider.default_model()
        return Binding(name, provider, model, source)

    # -- calling -----------------------------------------------------------------------

    def request(
        self,
        plan: NodePlan[P],
        binding: Binding,
        messages: list[ChatMessage],
        **overrides: Any,
    ) -> LLMRequest:
        """The request for ``messages`` with the node's options (and the settings' defaults)."""
        o = plan.options
        temperature = o.temperature if o.temperature is not None else self.settings.temperature
        max_out = o.max_output_tokens or self.settings.max_output_tokens
        request = LLMRequest(
            messages=messages,
            model=binding.model,
            temperature=temperature,
            max_output_tokens=max_out,
            max_input_tokens=o.max_input_tokens,
            stream=o.stream,
            thinking_level=o.thinking_level,
            vision=o.vision,
            top_p=o.top_p,
            stop=list(o.stop),
            seed=o.seed,
        )
        for name, value in overrides.items():
            setattr(request, name, value)
        return request

    async def call(
        self,
        context: ExecutionContext,
        binding: Binding,
        request: LLMRequest,
    ) -> LLMResponse:
        """Call the provider; streamed free text becomes TokenGenerated events, none of
        them after the flow began to stop (a listener may stop it on any token, while
        text already received or generated is still being handed over). A constrained
        answer (choices, JSON schema) is for the engine, not a reader: it never streams.

        The call is announced by `LLMCallStarted` and closed by `LLMCallFinished`
        (with the provider's error when it fails)."""
        on_token = None
        if request.stream and request.free_text:
            emit = context.emit_token

            def on_token(token: str) -> None:
                if not context.cancelled:
                    emit(token)

        call = _call_fields(context, binding, request)
        context.emit(
            LLMCallStarted(
                **call,
                messages=[_message_dict(m) for m in request.messages],
                tools=[tool.name for tool in request.tools],
                temperature=request.temperature,
                max_output_tokens=request.max_output_tokens,
                top_p=request.top_p,
                seed=request.seed,
                stream=request.stream,
            )
        )
        started = time.perf_counter()
        finished = LLMCallFinished(**call)
        try:
            response = await binding.provider.complete(request, on_token, lambda: context.cancelled)
        except ProviderError as exc:
            finished.error = str(exc)
            finished.duration_seconds = time.perf_counter() - started
            context.emit(finished)
            raise
        finished.model = response.model
        finished.text = response.text
        finished.tool_calls = [call.to_dict() for call in response.tool_calls]
        finished.finish_reason = response.finish_reason
        finished.usage = dict(response.usage)
        finished.duration_seconds = time.perf_counter() - started
        context.emit(finished)
        return response

    @staticmethod
    def llm_data(binding: Binding, response: LLMResponse) -> dict[str, Any]:
        """What the node records about the call in its output data."""
        data: dict[str, Any] = {"provider": binding.name, "model": response.model}
        if response.usage:
            data["usage"] = dict(response.usage)
        if response.finish_reason:
            data["finish_reason"] = response.finish_reason
        return data

    # -- the NodeExecutor protocol --------------------------------------------------------

    async def execute(self, context: ExecutionContext) -> NodeResult:
        plan = self.node_plan(context.current_node, context.graph)
        if plan.problems:
            return NodeResult(success=False, error="; ".join(plan.problems))
        try:
            binding = self.bind(plan.options)
            return await self.run(context, plan, binding)
        except (ProviderError, NoProviderError, UnknownProviderError, NodeFailure) as exc:
            return NodeResult(success=False, error=str(exc))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _message_dict(message: ChatMessage) -> dict[str, Any]:
    data: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        data["tool_calls"] = [call.to_dict() for call in message.tool_calls]
    if message.tool_call_id is not None:
        data["tool_call_id"] = message.tool_call_id
    return data


def _call_fields(
    context: ExecutionContext, binding: Binding, request: LLMRequest
) -> dict[str, Any]:
    """What `LLMCallStarted` and `LLMCallFinished` of one call share."""
    node = context.current_node
    return {
        "flow_id": context.flow_id,
        "node_id": node.id,
        "node_name": node.name,
        "call": next(_calls),
        "provider": binding.name,
        "model": request.model or "",
    }
