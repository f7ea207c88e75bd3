"""`FlowTracer`: a runner's events in, spans out.

- A flow is an ``invoke_agent {graph}`` span whose trace id and span id come from the
  flow id (`qm_sink_otel.ids`). It ends when the flow finishes, stops or pauses; a
  resume (here or in another process) opens a new ``invoke_agent`` span under it,
  the flow's *segment*, with a ``qm.flow.resumed`` span event.
- Node runs are ``node {name}`` spans under the flow's span (`qm_sink_otel.nodes`).
- A finished flow's span carries its usage (node runs, tokens, cost) when its
  engine has budgets (`FlowFinished.usage`), and each budget key's totals across
  flows (``qm.key.<key>.usage.*``, `FlowFinished.key_usage`) when it has key budgets.
- A child flow's span is under the span of the node that runs it, in the same trace
  (on a fleet, followed by a client: under the span of the node's run after the
  wake, whose id is planned from the child's id, see `nodes`).
- Extensions open spans under a node run with ``nodes.open_span`` / ``close_span``
  (the LLM pack's model and tool calls, `qm_sink_otel.genai`).

Events of a flow this process did not see start (a worker running some of its nodes)
land under the flow span all the same: its ids are known from the flow id.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from uuid import UUID

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from qm_sink_otel import content
from qm_sink_otel import conventions as sc
from qm_sink_otel.ids import PlannedIds, child_wait_span_id, flow_span_id, flow_trace_id
from qm_sink_otel.nodes import NodeSpans
from qm_sink_otel.state import ROOT, Flow, Flows, ns, under
from quartermaster_engine.context import child_flow_id
from quartermaster_engine.events import (
    FlowEvent,
    FlowFinished,
    FlowPaused,
    FlowResumed,
    FlowStarted,
    FlowStopped,
    ScheduleFired,
)
from quartermaster_graph import NodeType

_SUB_ASSISTANT = NodeType.SUB_ASSISTANT.value


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
        self.record_content = record_content
        self.flows = Flows(sampled)
        self.nodes = NodeSpans(tracer, self.flows, record_content=record_content, ids=ids)
        self._lock = threading.Lock()
        self._handlers: dict[type, Callable[[Any], None]] = {
            FlowStarted: self._flow_started,
            FlowResumed: self._flow_resumed,
            FlowPaused: self._flow_paused,
            FlowStopped: self._flow_stopped,
            FlowFinished: self._flow_finished,
            ScheduleFired: self._schedule_fired,
            **self.nodes.handlers(),
        }
        try:
            from qm_sink_otel import genai
        except ImportError:  # qm-nodes-llm is not installed: no LLM events to trace
            pass
        else:
            self._handlers.update(genai.handlers(self.nodes))

    def handle(self, event: FlowEvent) -> None:
        """Turn ``event`` into span changes (events of other types are ignored)."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            with self._lock:
                handler(event)

    @property
    def open_flows(self) -> int:
        """Flows with spans still open in this process."""
        return len(self.flows.open)

    # -- flow spans -------------------------------------------------------------------

    @staticmethod
    def _attributes(event: FlowEvent, graph_name: str, trace_id: int) -> dict[str, Any]:
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

    def _child_parent(
        self, parent_id: UUID, parent: Flow, child_id: UUID, started: float
    ) -> Context:
        """The span a child flow starts under: the run of the node whose child it is
        (parked on a fleet: that run's span starts no later than its child's)."""
        subs = []
        for (node_id, visit), run in parent.runs.items():
            if child_flow_id(parent_id, node_id, visit) == child_id:
                return under(run.span)
            if run.node_type == _SUB_ASSISTANT:
                subs.append(run)
        for key, (parked_child, when) in parent.parked.items():
            if parked_child == child_id:  # on a fleet: its node's run opens after it ends
                parent.parked[key] = (child_id, min(when, started))
                return self.flows.remote(parent.trace_id, child_wait_span_id(child_id))
        if len(subs) == 1:  # a retried sub-graph (its child has an attempt key)
            return under(subs[0].span)
        return parent.context

    def _flow_started(self, event: FlowStarted) -> None:
        parent_id = event.parent_flow_id
        parent = self.flows.open.get(parent_id) if parent_id is not None else None
        if parent_id is None:
            trace_id = flow_trace_id(event.flow_id)
            where = ROOT
        elif parent is not None:
            trace_id = parent.trace_id
            where = self._child_parent(parent_id, parent, event.flow_id, event.ts)
        else:
            trace_id = flow_trace_id(parent_id)
            where = self.flows.remote(trace_id, flow_span_id(parent_id))
        attributes = self._attributes(event, event.graph_name, trace_id)
        if self.record_content:
            attributes[sc.INPUT_MESSAGES] = content.user_input(event.input)
        # The flow's first span gets the flow span id; a root also its trace id.
        self.ids.plan(flow_span_id(event.flow_id), trace_id if parent_id is None else None)
        try:
            span = self.tracer.start_span(
                sc.agent_span_name(event.graph_name),
                context=where,
                kind=SpanKind.INTERNAL,
                attributes=attributes,
                start_time=ns(event.ts),
            )
        finally:
            self.ids.clear()
        self.flows.open[event.flow_id] = Flow(trace_id, span, under(span))

    def _segment(self, event: FlowEvent, graph_name: str) -> tuple[Flow, Span]:
        """The flow's open span, or a new one continuing it (resume, recover, stop of
        a paused flow), under the flow span."""
        flow = self.flows.open.get(event.flow_id)
        if flow is not None and flow.span is not None:
            return flow, flow.span
        if flow is not None:
            trace_id = flow.trace_id
        else:
            trace_id = self.flows.trace_of(event.flow_id, event.parent_flow_id)
        # A segment's span id is random: the flow span is the first segment.
        span = self.tracer.start_span(
            sc.agent_span_name(graph_name),
            context=self.flows.remote(trace_id, flow_span_id(event.flow_id)),
            kind=SpanKind.INTERNAL,
            attributes={**self._attributes(event, graph_name, trace_id), sc.FLOW_RESUMED: True},
            start_time=ns(event.ts),
        )
        if flow is None:
            flow = self.flows.open[event.flow_id] = Flow(trace_id, span, under(span))
        else:
            flow.open(span)
        return flow, span

    def _flow_resumed(self, event: FlowResumed) -> None:
        _, span = self._segment(event, event.graph_name)
        attributes: dict[str, Any] = {"reason": event.reason}
        if event.node_id is not None:
            attributes[sc.NODE_ID] = str(event.node_id)
        span.add_event(sc.EVENT_RESUMED, attributes, timestamp=ns(event.ts))

    def _schedule_fired(self, event: ScheduleFired) -> None:
        _, span = self._segment(event, "")
        attributes: dict[str, Any] = {
            "schedule": event.schedule,
            "tick": event.tick,
            "tick_iso": event.tick_iso,
            "missed": event.missed,
        }
        if event.manual:  # fired by hand (qm schedules run)
            attributes["manual"] = True
        span.add_event(sc.EVENT_SCHEDULE_FIRED, attributes, timestamp=ns(event.ts))

    def _flow_paused(self, event: FlowPaused) -> None:
        flow, span = self._segment(event, "")
        waiting = [str(node) for node in event.waiting]
        span.add_event(sc.EVENT_PAUSED, {"waiting": waiting}, timestamp=ns(event.ts))
        self._end(event, flow, span, "paused")

    def _flow_stopped(self, event: FlowStopped) -> None:
        flow, span = self._segment(event, "")
        span.add_event(sc.EVENT_STOPPED, {"reason": event.reason}, timestamp=ns(event.ts))
        self._end(event, flow, span, "stopped")

    def _flow_finished(self, event: FlowFinished) -> None:
        flow, span = self._segment(event, "")
        if event.error is not None:
            span.set_status(Status(StatusCode.ERROR, event.error))
            span.set_attribute(sc.ERROR_TYPE, "FlowFailed")
        elif self.record_content:
            span.set_attribute(sc.OUTPUT_MESSAGES, content.output_message(event.final_output))
        if event.usage is not None:
            span.set_attributes(_usage(event.usage))
        if event.key_usage:
            span.set_attributes(_key_usage(event.key_usage))
        self._end(event, flow, span, event.status)

    def _end(self, event: FlowEvent, flow: Flow, span: Span, status: str) -> None:
        """End the flow's span and whatever of it is still open (a stop cancels runs)."""
        end = ns(event.ts)
        for extra in flow.extras.values():
            extra.set_attribute(sc.ERROR_TYPE, "cancelled")
            extra.end(end_time=end)
        for run in flow.runs.values():
            run.span.set_attribute(sc.NODE_STATUS, "cancelled")
            run.span.end(end_time=end)
        span.set_attribute(sc.FLOW_STATUS, status)
        span.end(end_time=end)
        del self.flows.open[event.flow_id]


def _usage(usage: dict[str, Any]) -> dict[str, Any]:
    """A finished flow's usage (`FlowFinished.usage`) as span attributes: node runs,
    tokens in and out (the GenAI names) and in all, and the cost when priced."""
    attributes: dict[str, Any] = {
        sc.FLOW_NODE_RUNS: usage.get("node_runs", 0),
        sc.USAGE_INPUT_TOKENS: usage.get("input_tokens", 0),
        sc.USAGE_OUTPUT_TOKENS: usage.get("output_tokens", 0),
        sc.FLOW_TOKENS: usage.get("tokens", 0),
    }
    if usage.get("currency"):
        attributes[sc.FLOW_COST] = float(usage.get("cost") or 0.0)
        attributes[sc.FLOW_CURRENCY] = usage["currency"]
    return attributes


def _key_usage(keys: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The flow's budget keys' totals across flows (`FlowFinished.key_usage`) as span
    attributes, ``qm.key.<key>.usage.*``."""
    attributes: dict[str, Any] = {}
    for key, used in keys.items():
        attributes[sc.key_usage(key, "node_runs")] = int(used.get("node_runs") or 0)
        attributes[sc.key_usage(key, "tokens")] = int(used.get("tokens") or 0)
        attributes[sc.key_usage(key, "cost")] = float(used.get("cost") or 0.0)
        attributes[sc.key_usage(key, "currency")] = str(used.get("currency") or "")
    return attributes
