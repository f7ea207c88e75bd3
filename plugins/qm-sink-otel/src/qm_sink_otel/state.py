"""What is open, per flow, in this process, and the contexts spans start in."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Protocol
from uuid import UUID

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, TraceFlags

from qm_sink_otel.ids import flow_span_id, flow_trace_id

#: No parent: a flow's span never joins whatever span the calling code has open.
ROOT = Context()


class NodeEvent(Protocol):
    """An event about one node of a flow."""

    flow_id: UUID
    parent_flow_id: UUID | None
    node_id: UUID
    ts: float


def ns(ts: float) -> int:
    """An event's timestamp (seconds) as span time (nanoseconds)."""
    return int(ts * 1e9)


def under(span: Span) -> Context:
    """The context of spans started under ``span``."""
    return trace.set_span_in_context(span, ROOT)


class Run:
    """An open node span."""

    __slots__ = ("attempt", "node_type", "span", "visit")

    def __init__(self, span: Span, node_type: str, visit: int, attempt: int) -> None:
        self.span = span
        self.node_type = node_type
        self.visit = visit
        self.attempt = attempt


class Flow:
    """What is open of one flow: its span (None for a flow seen only through node
    events), its node runs, and extension spans by key."""

    __slots__ = ("context", "extras", "latest", "parked", "runs", "span", "trace_id")

    def __init__(self, trace_id: int, span: Span | None, context: Context) -> None:
        self.trace_id = trace_id
        self.span = span
        self.context = context
        self.runs: dict[tuple[UUID, int], Run] = {}
        self.latest: dict[UUID, Run] = {}
        self.extras: dict[Hashable, Span] = {}
        #: Node runs parked on a fleet child: (node, visit) -> (child flow id, when).
        self.parked: dict[tuple[UUID, int], tuple[UUID, float]] = {}

    def open(self, span: Span) -> None:
        """``span`` is the flow's span in this process from now on."""
        self.span = span
        self.context = under(span)


class Flows:
    """The open flows of this process. ``sampled(trace_id)`` tells whether a trace is
    sampled, for the parents that come from flow ids."""

    def __init__(self, sampled: Callable[[int], bool]) -> None:
        self.sampled = sampled
        self.open: dict[UUID, Flow] = {}

    def trace_of(self, flow_id: UUID, parent_flow_id: UUID | None) -> int:
        """The trace of a flow: its own id for a root, its parent's trace for a child
        (the parent's id when the parent is not open here)."""
        if parent_flow_id is None:
            return flow_trace_id(flow_id)
        parent = self.open.get(parent_flow_id)
        return parent.trace_id if parent is not None else flow_trace_id(parent_flow_id)

    def remote(self, trace_id: int, span_id: int) -> Context:
        """A context under a span exported by another process (or earlier)."""
        flags = TraceFlags(TraceFlags.SAMPLED if self.sampled(trace_id) else TraceFlags.DEFAULT)
        parent = SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags)
        return trace.set_span_in_context(NonRecordingSpan(parent), ROOT)

    def of(self, event: NodeEvent) -> Flow:
        """The flow of ``event``; for a flow not open here, one under its flow span."""
        flow = self.open.get(event.flow_id)
        if flow is None:
            trace_id = self.trace_of(event.flow_id, event.parent_flow_id)
            flow = Flow(trace_id, None, self.remote(trace_id, flow_span_id(event.flow_id)))
            self.open[event.flow_id] = flow
        return flow

    def forget_if_idle(self, flow_id: UUID, flow: Flow) -> None:
        """Drop a flow seen only through node events once nothing of it is open."""
        if flow.span is None and not flow.runs and not flow.extras:
            del self.open[flow_id]
