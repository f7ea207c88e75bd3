"""qm-sink-otel: OpenTelemetry traces of Quartermaster flows.

Installed, the package registers the event sink ``otel`` (entry point ``otel`` of
group ``quartermaster``)::

    [[sinks]]
    name = "otel"
    endpoint = "http://localhost:4318"

A flow is a trace whose id is the flow id: an ``invoke_agent {graph}`` span, a
``node {name}`` span per node run, ``chat {model}`` and ``execute_tool {name}`` spans
for the LLM pack's model and tool calls, following the GenAI semantic conventions
`SEMCONV_VERSION`. Without plugin discovery::

    from qm_sink_otel import OtelSettings, OtelSink

    sink = OtelSink(OtelSettings(endpoint="http://localhost:4318"))
    runner = FlowRunner(graph, registry, sinks=[sink])

See ``docs/sink-otel.md``.
"""

from qm_sink_otel.conventions import SCHEMA_URL, SEMCONV_VERSION
from qm_sink_otel.exporting import MissingExtraError, ReportOnce, otlp_exporter, traces_endpoint
from qm_sink_otel.ids import flow_span_id, flow_trace_id
from qm_sink_otel.settings import OtelSettings
from qm_sink_otel.sink import OtelSink, __version__
from qm_sink_otel.tracing import FlowTracer

__all__ = [
    "SCHEMA_URL",
    "SEMCONV_VERSION",
    "FlowTracer",
    "MissingExtraError",
    "OtelSettings",
    "OtelSink",
    "ReportOnce",
    "__version__",
    "flow_span_id",
    "flow_trace_id",
    "otlp_exporter",
    "traces_endpoint",
]
