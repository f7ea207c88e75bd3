"""`FlowTracer`: a runner's events in, spans out.

- A flow is an ``invoke_agent {graph}`` span whose trace id and span id come from the
  flow id (`qm_sink_otel.ids`). It ends when the flow finishes, stops or pauses; a
  resume (here or in another process) opens a new ``invoke_agent`` span under it,
  with a ``qm.flow.resumed`` span event.
- Each node run (one attempt of one visit) is a ``node {name}`` span under the flow
  span: its status, and what the engine did when it failed (``qm.node.error_strategy``:
  retry, skip, continue, stop); a retry is a span event of the failed attempt. A node
  on a path not taken is a span of no duration with status ``dead``.
- A child flow's span is under the span of the node that runs it, in the same trace.
- Extensions open spans under a node run with `open_span` / `close_span` (the LLM
  pack's model and tool calls, `qm_sink_otel.genai`).

Events of a flow this process did not see start (a worker running some of its nodes)
land under the flow span all the same: its ids are known from the flow id.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, Protocol
from uuid import UUID

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from qm_sink_otel import content
from qm_sink_otel import conventions as sc
from qm_sink_otel.ids import PlannedIds, flow_span_id, flow_trace_id
from quartermaster_engine.context import child_flow_id
from quartermaster_engine.events import (
    FlowError,
    FlowEvent,
    FlowFinished,
    FlowPaused,
    FlowResumed,
    FlowStarted,
    FlowStopped,
    NodeDead,
    NodeFinished,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
    UserInputRequired,
)
from quartermaster_graph import NodeType

_SUB_ASSISTANT = NodeType.SUB_ASSISTANT.value
_ROOT = Context()  # no parent: a flow's span never joins whatever span the caller has open


class NodeEvent(Protocol):
    """An event about one node of a flow."""

    flow_id: UUID
    parent_flow_id: UUID | None
    node_id: UUID
    ts: float


def _ns(ts: float) -> int:
    return int(ts * 1e9)


class _Run:
    """An open node span."""

    __slots__ = ("attempt", "node_type", "span", "visit")

    def __init__(self, span: Span, node_type: str, visit: int, attempt: int) -> None:
        self.span = span
        self.node_type = node_type
        self.visit = visit
        self.attempt = attempt


class _Flow:
    """What is open of one flow in this process: its span (None for a flow seen only
    through node events), node runs and extension spans."""

    __slots__ = ("context", "extras", "latest", "runs", "span", "trace_id")

    def __init__(self, trace_id: int, span: Span | None, context: Context) -> None:
        self.trace_id = trace_id
        self.span = span
        self.context = context
        self.runs: dict[tuple[UUID, int], _Run] = {}
        self.latest: dict[UUID, _Run] = {}
        self.extras: dict[Hashable, Span] = {}


class FlowTracer:
    """Builds spans from events with ``tracer`` (whose provider uses ``ids``).
    ``sampled(trace_id)`` tells whether a trace is sampled (for the parents that come
    from flow ids); ``record_content`` adds prompts, answers, inputs and outputs.
    `handle` is thread-safe."""

    def __init__(
        self,
        tracer: trace.Tracer,
        ids: PlannedIds,
        sampled: Callable[[int], bool],
        *,
        record_content: bool = False,
    ) -> None:
        self.tracer = tracer
        self.ids = ids
        self.sampled = sampled
        self.record_content = record_content
        self._flows: dict[UUID, _Flow] = {}
        self._lock = threading.Lock()
        self._handlers: dict[type, Callable[[Any], None]] = {
            FlowStarted: self._flow_started,
            FlowResumed: self._flow_resumed,
            FlowPaused: self._flow_paused,
            FlowStopped: self._flow_stopped,
            FlowFinished: self._flow_finished,
            NodeStarted: self._node_started,
            NodeFinished: self._node_finished,
            NodeRetrying: self._node_retrying,
            NodeSkipped: self._node_skipped,
            NodeDead: self._node_dead,
            FlowError: self._flow_error,
            UserInputRequired: self._user_input,
        }
        try:
            from qm_sink_otel import genai
        except ImportError:  # qm-nodes-llm is not installed: no LLM events to trace
            pass
        else:
            self._handlers.update(genai.handlers(self))

    def handle(self, event: FlowEvent) -> None:
        """Turn ``event`` into span changes (events of other types are ignored)."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            with self._lock:
                handler(event)

    @property
    def open_flows(self) -> int:
        """Flows with spans still open in this process."""
        return len(self._flows)

    # -- contexts -----------------------------------------------------------------

    def _trace_of(self, flow_id: UUID, parent_flow_id: UUID | None) -> int:
        if parent_flow_id is None:
            return flow_trace_id(flow_id)
        parent = self._flows.get(parent_flow_id)
        # A child resumed where its parent was not seen: its parent's trace.
        return parent.trace_id if parent is not None else flow_trace_id(parent_flow_id)

    def _remote(self, trace_id: int, span_id: int) -> Context:
        flags = TraceFlags(TraceFlags.SAMPLED if self.sampled(trace_id) else TraceFlags.DEFAULT)
        parent = SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags)
        return trace.set_span_in_context(NonRecordingSpan(parent), _ROOT)

    def _flow(self, event: NodeEvent) -> _Flow:
        flow = self._flows.get(event.flow_id)
        if flow is None:
            trace_id = self._trace_of(event.flow_id, event.parent_flow_id)
            flow = _Flow(trace_id, None, self._remote(trace_id, flow_span_id(event.flow_id)))
            self._flows[event.flow_id] = flow
        return flow

    @staticmethod
    def _flow_attributes(event: FlowEvent, graph_name: str, trace_id: int) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            sc.OPERATION_NAME: sc.INVOKE_AGENT,
            # The conversation is the root flow, whose id is the trace id.
            sc.CONVERSATION_ID: str(UUID(int=trace_id)),
            sc.FLOW_ID: str(event.flow_id),
        }
        if graph_name:
            attributes[sc.AGENT_NAME] = graph_name
        if event.parent_flow_id is not None:
            attributes[sc.FLOW_PARENT_ID] = str(event.parent_flow_id)
        return attributes

    def _start_flow_span(
        self,
        event: FlowEvent,
        graph_name: str,
        parent: Context,
        trace_id: int,
        root: bool,
        content: dict[str, Any],
    ) -> Span:
        attributes = self._flow_attributes(event, graph_name, trace_id)
        attributes.update(content)
        self.ids.plan(flow_span_id(event.flow_id), trace_id if root else None)
        try:
            return self.tracer.start_span(
                sc.agent_span_name(graph_name),
                context=parent,
                kind=SpanKind.INTERNAL,
                attributes=attributes,
                start_time=_ns(event.ts),
            )
        finally:
            self.ids.clear()

    def _child_parent(self, parent_id: UUID, parent: _Flow, child_id: UUID) -> Context:
        """The span a child flow starts under: the run of the node whose child it is."""
        subs = []
        for (node_id, visit), run in parent.runs.items():
            if child_flow_id(parent_id, node_id, visit) == child_id:
                return trace.set_span_in_context(run.span, _ROOT)
            if run.node_type == _SUB_ASSISTANT:
                subs.append(run)
        if len(subs) == 1:  # a retried sub-graph (its child has an attempt key)
            return trace.set_span_in_context(subs[0].span, _ROOT)
        return parent.context

    # -- flows ----------------------------------------------------------------------

    def _flow_started(self, event: FlowStarted) -> None:
        attributes: dict[str, Any] = {}
        if self.record_content:
            attributes[sc.INPUT_MESSAGES] = content.user_input(event.input)
        parent_id = event.parent_flow_id
        parent = self._flows.get(parent_id) if parent_id is not None else None
        if parent_id is None:
            trace_id = flow_trace_id(event.flow_id)
            where = _ROOT
        elif parent is not None:
            trace_id = parent.trace_id
            where = self._child_parent(parent_id, parent, event.flow_id)
        else:
            trace_id = flow_trace_id(parent_id)
            where = self._remote(trace_id, flow_span_id(parent_id))
        root = parent_id is None
        span = self._start_flow_span(event, event.graph_name, where, trace_id, root, attributes)
        self._flows[event.flow_id] = _Flow(trace_id, span, trace.set_span_in_context(span, _ROOT))

    def _segment(self, event: FlowEvent, graph_name: str) -> tuple[_Flow, Span]:
        """The flow's open span, or a new one continuing it (resume, recover, stop of
        a paused flow), under the flow span."""
        flow = self._flows.get(event.flow_id)
        if flow is not None and flow.span is not None:
            return flow, flow.span
        trace_id = flow.trace_id if flow else self._trace_of(event.flow_id, event.parent_flow_id)
        under = self._remote(trace_id, flow_span_id(event.flow_id))
        # A segment's span id is random: the flow span is the first segment.
        span = self.tracer.start_span(
            sc.agent_span_name(graph_name),
            context=under,
            kind=SpanKind.INTERNAL,
            attributes={
                **self._flow_attributes(event, graph_name, trace_id),
                sc.FLOW_RESUMED: True,
            },
            start_time=_ns(event.ts),
        )
        if flow is None:
            flow = _Flow(trace_id, span, trace.set_span_in_context(span, _ROOT))
            self._flows[event.flow_id] = flow
        else:
            flow.span = span
            flow.context = trace.set_span_in_context(span, _ROOT)
        return flow, span

    def _flow_resumed(self, event: FlowResumed) -> None:
        _, span = self._segment(event, event.graph_name)
        attributes: dict[str, Any] = {"reason": event.reason}
        if event.node_id is not None:
            attributes[sc.NODE_ID] = str(event.node_id)
        span.add_event(sc.EVENT_RESUMED, attributes, timestamp=_ns(event.ts))

    def _flow_paused(self, event: FlowPaused) -> None:
        flow, span = self._segment(event, "")
        waiting = [str(node) for node in event.waiting]
        span.add_event(sc.EVENT_PAUSED, {"waiting": waiting}, timestamp=_ns(event.ts))
        self._end_flow(event, flow, span, "paused")

    def _flow_stopped(self, event: FlowStopped) -> None:
        flow, span = self._segment(event, "")
        span.add_event(sc.EVENT_STOPPED, {"reason": event.reason}, timestamp=_ns(event.ts))
        self._end_flow(event, flow, span, "stopped")

    def _flow_finished(self, event: FlowFinished) -> None:
        flow, span = self._segment(event, "")
        if event.error is not None:
            span.set_status(Status(StatusCode.ERROR, event.error))
            span.set_attribute(sc.ERROR_TYPE, "FlowFailed")
        elif self.record_content:
            span.set_attribute(sc.OUTPUT_MESSAGES, content.output_message(event.final_output))
        self._end_flow(event, flow, span, event.status)

    def _end_flow(self, event: FlowEvent, flow: _Flow, span: Span, status: str) -> None:
        end = _ns(event.ts)
        for extra in flow.extras.values():
            extra.set_attribute(sc.ERROR_TYPE, "cancelled")
            extra.end(end_time=end)
        for run in flow.runs.values():
            run.span.set_attribute(sc.NODE_STATUS, "cancelled")
            run.span.end(end_time=end)
        span.set_attribute(sc.FLOW_STATUS, status)
        span.end(end_time=end)
        del self._flows[event.flow_id]

    # -- node runs ------------------------------------------------------------------

    def _node_started(self, event: NodeStarted) -> None:
        flow = self._flow(event)
        kind = event.node_type
        node_type = kind.value if isinstance(kind, NodeType) else kind
        span = self.tracer.start_span(
            sc.node_span_name(event.node_name),
            context=flow.context,
            attributes={
                sc.NODE_ID: str(event.node_id),
                sc.NODE_NAME: event.node_name,
                sc.NODE_TYPE: node_type,
                sc.NODE_VISIT: event.visit,
                sc.NODE_ATTEMPT: event.attempt,
            },
            start_time=_ns(event.ts),
        )
        run = _Run(span, node_type, event.visit, event.attempt)
        flow.runs[(event.node_id, event.visit)] = run
        flow.latest[event.node_id] = run

    def _end_run(
        self,
        event: NodeEvent,
        run: _Run,
        status: str,
        error: str | None = None,
        strategy: str | None = None,
    ) -> None:
        flow = self._flows[event.flow_id]
        del flow.runs[(event.node_id, run.visit)]
        if flow.latest.get(event.node_id) is run:
            del flow.latest[event.node_id]
        span = run.span
        span.set_attribute(sc.NODE_STATUS, status)
        if strategy is not None:
            span.set_attribute(sc.NODE_ERROR_STRATEGY, strategy)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=_ns(event.ts))
        self._forget_if_idle(event.flow_id, flow)

    def _forget_if_idle(self, flow_id: UUID, flow: _Flow) -> None:
        if flow.span is None and not flow.runs and not flow.extras:
            del self._flows[flow_id]  # seen only through node events: nothing left open

    def _run(self, event: NodeEvent) -> _Run | None:
        flow = self._flows.get(event.flow_id)
        return flow.latest.get(event.node_id) if flow is not None else None

    def _node_finished(self, event: NodeFinished) -> None:
        flow = self._flows.get(event.flow_id)
        run = flow.runs.get((event.node_id, event.visit)) if flow is not None else None
        if run is not None:
            self._end_run(event, run, "completed")

    def _node_retrying(self, event: NodeRetrying) -> None:
        run = self._run(event)
        if run is None:
            return
        run.span.add_event(
            sc.EVENT_RETRY,
            {
                "error": event.error,
                "attempt": event.attempt,
                "next_attempt": event.next_attempt,
                "delay": event.delay,
            },
            timestamp=_ns(event.ts),
        )
        self._end_run(event, run, "failed", event.error, "retry")

    def _node_skipped(self, event: NodeSkipped) -> None:
        run = self._run(event)
        if run is not None:
            self._end_run(event, run, "skipped", event.error, "skip")

    def _node_dead(self, event: NodeDead) -> None:
        flow = self._flow(event)
        at = _ns(event.ts)
        span = self.tracer.start_span(
            sc.node_span_name(event.node_name),
            context=flow.context,
            attributes={
                sc.NODE_ID: str(event.node_id),
                sc.NODE_NAME: event.node_name,
                sc.NODE_STATUS: "dead",
            },
            start_time=at,
        )
        span.end(end_time=at)
        self._forget_if_idle(event.flow_id, flow)

    def _flow_error(self, event: FlowError) -> None:
        run = self._run(event)
        if run is not None:  # (a skipped node's run has ended already)
            strategy = "continue" if event.recoverable else "stop"
            self._end_run(event, run, "failed", event.error, strategy)

    def _user_input(self, event: UserInputRequired) -> None:
        run = self._run(event)
        if run is None:
            return
        attributes: dict[str, Any] = {"options": list(event.options)}
        if self.record_content:
            attributes["prompt"] = event.prompt
        run.span.add_event(sc.EVENT_USER_INPUT, attributes, timestamp=_ns(event.ts))
        self._end_run(event, run, "waiting")

    # -- extensions -----------------------------------------------------------------

    def open_span(
        self,
        event: NodeEvent,
        key: Hashable,
        name: str,
        kind: SpanKind,
        attributes: dict[str, Any],
    ) -> None:
        """Start a span under the open run of ``event.node_id`` (else under the flow),
        closed by `close_span` with the same ``key``, or when the flow ends."""
        flow = self._flow(event)
        run = flow.latest.get(event.node_id)
        parent = trace.set_span_in_context(run.span, _ROOT) if run is not None else flow.context
        flow.extras[key] = self.tracer.start_span(
            name, context=parent, kind=kind, attributes=attributes, start_time=_ns(event.ts)
        )

    def close_span(
        self, event: NodeEvent, key: Hashable, attributes: dict[str, Any], error: str | None
    ) -> None:
        """End the span `open_span` started with ``key`` (an unknown key is ignored)."""
        flow = self._flows.get(event.flow_id)
        span = flow.extras.pop(key, None) if flow is not None else None
        if flow is None or span is None:
            return
        span.set_attributes(attributes)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=_ns(event.ts))
        self._forget_if_idle(event.flow_id, flow)
