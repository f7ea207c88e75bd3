"""`OtelSink`: the ``otel`` event sink."""

from __future__ import annotations

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, TraceIdRatioBased

from qm_sink_otel import conventions as sc
from qm_sink_otel.exporting import ReportOnce, otlp_exporter, traces_endpoint
from qm_sink_otel.ids import PlannedIds
from qm_sink_otel.reporting import Listening, Once
from qm_sink_otel.settings import OtelSettings
from qm_sink_otel.tracing import FlowTracer
from quartermaster_engine.events import FlowEvent

__version__ = "0.2.0"


class OtelSink:
    """Traces flows as OpenTelemetry spans and exports them in batches from a
    background thread (the SDK's `BatchSpanProcessor`): `emit` only records spans in
    memory, so a slow or unreachable collector never holds a flow up.

    ``settings`` choose the OTLP exporter; ``exporter`` replaces it with any SDK span
    exporter (``InMemorySpanExporter`` in tests). The sink has its own tracer provider
    and leaves the process's global one alone. `flush` exports what is pending;
    `close` flushes and stops the export thread.
    """

    name = "otel"

    def __init__(
        self, settings: OtelSettings | None = None, *, exporter: SpanExporter | None = None
    ) -> None:
        self.settings = settings if settings is not None else OtelSettings()
        s = self.settings
        if exporter is None:
            exporter = ReportOnce(otlp_exporter(s), traces_endpoint(s))
        self.exporter = exporter
        self._ids = PlannedIds()
        root = TraceIdRatioBased(s.sampling)
        self.provider = TracerProvider(
            resource=Resource.create({SERVICE_NAME: s.service_name}),
            sampler=ParentBased(root),
            id_generator=self._ids,
        )
        # A batch is at most the queue (the SDK's default batch is 512 spans).
        batch = s.max_queue_size if s.max_queue_size < 512 else None
        self.provider.add_span_processor(
            BatchSpanProcessor(
                exporter, max_queue_size=s.max_queue_size, max_export_batch_size=batch
            )
        )
        self._listening = Listening()
        self._dropping = Once()
        tracer = self.provider.get_tracer("qm_sink_otel", __version__, schema_url=sc.SCHEMA_URL)

        def sampled(trace_id: int) -> bool:
            decision = root.should_sample(None, trace_id, "flow").decision
            return decision is Decision.RECORD_AND_SAMPLE

        self.tracer = FlowTracer(tracer, self._ids, sampled, record_content=s.record_content)

    @classmethod
    def from_settings(cls, settings: OtelSettings) -> OtelSink:
        """The sink of a ``[[sinks]]`` entry."""
        return cls(settings)

    def emit(self, event: FlowEvent) -> None:
        heard = self._listening.start()
        try:
            self.tracer.handle(event)
        finally:
            self._listening.stop()
        if heard:  # the batch processor's queue is full: it drops spans
            self._dropping.give(
                f"otel sink: {self.settings.max_queue_size} ended spans are waiting for "
                "export; further spans are dropped until the queue drains (reported once)"
            )

    def flush(self, timeout_millis: int = 30000) -> bool:
        """Export every ended span now; False if that did not finish in time."""
        return self.provider.force_flush(timeout_millis)

    def close(self) -> None:
        """Export what is pending and stop the export thread (spans of flows still
        open are not exported)."""
        self.provider.shutdown()
