"""`NodeSpans`: a ``node {name}`` span per node run, and spans of extensions under it.

A run is one attempt of one visit. It ends with its status (``qm.node.status``) and,
when it failed, what the engine did next (``qm.node.error_strategy``: retry, skip,
continue, stop); a retry is a span event of the failed attempt. A node on a path not
taken is a span of no duration with status ``dead``, a wait whose deadline passed one
with status ``deadline_passed``. A Sleep1 run that parks ends with
status ``sleeping`` (span event ``qm.node.timer_set``); its run after the wake carries
``qm.node.timer_fired``. A run parked on a fleet child flow (``ChildFlowWaited``,
followed by a client) is one span from the park to the end of its run after the
wake (span event ``qm.node.child_flow_waited``), with the child's span under it.
A Map1 run that starts its items ends ``mapping`` (span event
``qm.node.map_started``); its join is another run. A fork's reused run carries ``qm.node.reused``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from qm_sink_otel import conventions as sc
from qm_sink_otel.content import value
from qm_sink_otel.ids import PlannedIds, child_wait_span_id
from qm_sink_otel.state import Flows, NodeEvent, Run, ns, under
from quartermaster_engine.events import (
    ChildFlowWaited,
    CustomEvent,
    DeadlinePassed,
    FlowError,
    MapProgress,
    NodeDead,
    NodeFinished,
    NodeRetrying,
    NodeReused,
    NodeSkipped,
    NodeStarted,
    ProgressEvent,
    TimerFired,
    TimerSet,
    UserInputRequired,
)
from quartermaster_graph import NodeType


def _node(event: NodeStarted | NodeDead) -> dict[str, Any]:
    return {sc.NODE_ID: str(event.node_id), sc.NODE_NAME: event.node_name}


class NodeSpans:
    """Node runs of the ``flows`` open in this process, traced with ``tracer``."""

    def __init__(
        self,
        tracer: trace.Tracer,
        flows: Flows,
        *,
        record_content: bool,
        ids: PlannedIds | None = None,
    ) -> None:
        self.tracer = tracer
        self.flows = flows
        self.record_content = record_content
        self.ids = ids

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        """The handler of each node event."""
        return {
            NodeStarted: self._started,
            NodeFinished: self._finished,
            NodeRetrying: self._retrying,
            NodeSkipped: self._skipped,
            NodeDead: self._dead,
            FlowError: self._error,
            UserInputRequired: self._user_input,
            ProgressEvent: self._progress,
            CustomEvent: self._custom,
            TimerSet: self._timer_set,
            TimerFired: self._timer_fired,
            DeadlinePassed: self._deadline_passed,
            NodeReused: self._reused,
            MapProgress: self._map_progress,
            ChildFlowWaited: self._child_waited,
        }

    # -- runs -----------------------------------------------------------------------

    def _started(self, event: NodeStarted) -> None:
        flow = self.flows.of(event)
        kind = event.node_type
        node_type = kind.value if isinstance(kind, NodeType) else kind
        attributes = _node(event)
        attributes[sc.NODE_TYPE] = node_type
        attributes[sc.NODE_VISIT] = event.visit
        attributes[sc.NODE_ATTEMPT] = event.attempt
        parked = flow.parked.pop((event.node_id, event.visit), None)
        start = event.ts if parked is None else parked[1]
        if parked is not None and self.ids is not None:
            self.ids.plan(child_wait_span_id(parked[0]))  # (its child's span is under it)
        try:
            span = self.tracer.start_span(
                sc.node_span_name(event.node_name),
                context=flow.context,
                attributes=attributes,
                start_time=ns(start),
            )
        finally:
            if self.ids is not None:
                self.ids.clear()
        if parked is not None:
            span.add_event(
                sc.EVENT_CHILD_WAITED, {"child_flow_id": str(parked[0])}, timestamp=ns(start)
            )
        run = Run(span, node_type, event.visit, event.attempt)
        flow.runs[(event.node_id, event.visit)] = run
        flow.latest[event.node_id] = run

    def _child_waited(self, event: ChildFlowWaited) -> None:
        """The node's run parked on a fleet child: no span yet (its run after the wake
        opens it, from the park's time or its child's start if earlier, with the id
        its child's span is under). Only
        where the flow's own span is open (the client following the whole flow):
        a worker that parked it may never see the run after the wake."""
        flow = self.flows.open.get(event.flow_id)
        if flow is not None and flow.span is not None:
            parked = flow.parked.get((event.node_id, event.visit))
            when = event.ts if parked is None else parked[1]
            flow.parked[(event.node_id, event.visit)] = (event.child_flow_id, when)

    def _end(
        self,
        event: NodeEvent,
        run: Run,
        status: str,
        error: str | None = None,
        strategy: str | None = None,
    ) -> None:
        flow = self.flows.open[event.flow_id]
        del flow.runs[(event.node_id, run.visit)]
        if flow.latest.get(event.node_id) is run:
            del flow.latest[event.node_id]
        span = run.span
        span.set_attribute(sc.NODE_STATUS, status)
        if strategy is not None:
            span.set_attribute(sc.NODE_ERROR_STRATEGY, strategy)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=ns(event.ts))
        self.flows.forget_if_idle(event.flow_id, flow)

    def _latest(self, event: NodeEvent) -> Run | None:
        flow = self.flows.open.get(event.flow_id)
        return flow.latest.get(event.node_id) if flow is not None else None

    def _finished(self, event: NodeFinished) -> None:
        flow = self.flows.open.get(event.flow_id)
        run = flow.runs.get((event.node_id, event.visit)) if flow is not None else None
        if run is not None:
            self._end(event, run, "completed")

    def _retrying(self, event: NodeRetrying) -> None:
        run = self._latest(event)
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
            timestamp=ns(event.ts),
        )
        self._end(event, run, "failed", event.error, "retry")

    def _progress(self, event: ProgressEvent) -> None:
        run = self._latest(event)
        if run is None:
            return
        attributes: dict[str, Any] = {"message": event.message, "data": value(event.data)}
        if event.percent is not None:
            attributes["percent"] = event.percent
        run.span.add_event(sc.EVENT_PROGRESS, attributes, timestamp=ns(event.ts))

    def _custom(self, event: CustomEvent) -> None:
        run = self._latest(event)
        if run is not None:
            run.span.add_event(
                sc.EVENT_CUSTOM,
                {"name": event.name, "payload": value(event.payload)},
                timestamp=ns(event.ts),
            )

    def _timer_set(self, event: TimerSet) -> None:
        run = self._latest(event)
        if run is None:
            return
        attributes: dict[str, Any] = {"wake_at": event.wake_at, "wake_iso": event.wake_iso}
        run.span.add_event(sc.EVENT_TIMER_SET, attributes, timestamp=ns(event.ts))
        self._end(event, run, "sleeping")  # the flow parks: its wake is another run

    def _map_progress(self, event: MapProgress) -> None:
        """A map started (its items run as runs of their own): its first run ends
        ``mapping``; the join is another run. Later progress is not a span event."""
        if event.done or event.failed:
            return
        flow = self.flows.open.get(event.flow_id)
        run = flow.runs.get((event.node_id, event.visit)) if flow is not None else None
        if run is None:
            return
        attributes: dict[str, Any] = {"total": event.total, "running": event.running}
        run.span.add_event(sc.EVENT_MAP_STARTED, attributes, timestamp=ns(event.ts))
        self._end(event, run, "mapping")

    def _timer_fired(self, event: TimerFired) -> None:
        run = self._latest(event)
        if run is not None:
            attributes: dict[str, Any] = {"wake_at": event.wake_at, "late": event.late}
            run.span.add_event(sc.EVENT_TIMER_FIRED, attributes, timestamp=ns(event.ts))

    def _deadline_passed(self, event: DeadlinePassed) -> None:
        # Logged while the flow is parked, before it resumes: like a dead node, a span
        # of no duration (status ``deadline_passed``) holds the span event.
        flow = self.flows.of(event)
        at = ns(event.ts)
        attributes: dict[str, Any] = {sc.NODE_ID: str(event.node_id), sc.NODE_NAME: event.node_name}
        attributes[sc.NODE_STATUS] = "deadline_passed"
        span = self.tracer.start_span(
            sc.node_span_name(event.node_name),
            context=flow.context,
            attributes=attributes,
            start_time=at,
        )
        passed: dict[str, Any] = {"deadline": event.deadline}
        if event.edge:  # it took its on_timeout_edge (a label of the graph, not content)
            passed["edge"] = event.edge
        elif self.record_content:
            passed["answer"] = event.answer
        span.add_event(sc.EVENT_DEADLINE_PASSED, passed, timestamp=at)
        span.end(end_time=at)
        self.flows.forget_if_idle(event.flow_id, flow)

    def _reused(self, event: NodeReused) -> None:
        run = self._latest(event)
        if run is not None:
            attributes: dict[str, Any] = {"from_flow": str(event.from_flow)}
            run.span.add_event(sc.EVENT_REUSED, attributes, timestamp=ns(event.ts))

    def _skipped(self, event: NodeSkipped) -> None:
        run = self._latest(event)
        if run is not None:
            self._end(event, run, "skipped", event.error, "skip")

    def _error(self, event: FlowError) -> None:
        run = self._latest(event)
        if run is not None:  # (a skipped node's run has ended already)
            strategy = "continue" if event.recoverable else "stop"
            self._end(event, run, "failed", event.error, strategy)

    def _user_input(self, event: UserInputRequired) -> None:
        run = self._latest(event)
        if run is None:
            return
        attributes: dict[str, Any] = {"options": list(event.options)}
        if self.record_content:
            attributes["prompt"] = event.prompt
        run.span.add_event(sc.EVENT_USER_INPUT, attributes, timestamp=ns(event.ts))
        self._end(event, run, "waiting")

    def _dead(self, event: NodeDead) -> None:
        flow = self.flows.of(event)
        at = ns(event.ts)
        attributes = _node(event)
        attributes[sc.NODE_STATUS] = "dead"
        span = self.tracer.start_span(
            sc.node_span_name(event.node_name),
            context=flow.context,
            attributes=attributes,
            start_time=at,
        )
        span.end(end_time=at)
        self.flows.forget_if_idle(event.flow_id, flow)

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
        flow = self.flows.of(event)
        run = flow.latest.get(event.node_id)
        parent = under(run.span) if run is not None else flow.context
        flow.extras[key] = self.tracer.start_span(
            name, context=parent, kind=kind, attributes=attributes, start_time=ns(event.ts)
        )

    def close_span(
        self, event: NodeEvent, key: Hashable, attributes: dict[str, Any], error: str | None
    ) -> None:
        """End the span `open_span` started with ``key`` (an unknown key is ignored)."""
        flow = self.flows.open.get(event.flow_id)
        span = flow.extras.pop(key, None) if flow is not None else None
        if flow is None or span is None:
            return
        span.set_attributes(attributes)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=ns(event.ts))
        self.flows.forget_if_idle(event.flow_id, flow)
