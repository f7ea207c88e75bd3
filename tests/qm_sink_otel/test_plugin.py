"""The sink as a plugin: what it registers, how its settings are checked, which exporter
they choose, and a gRPC collector receiving the spans (a real grpcio server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from support import chain

import qm_sink_otel
from qm_sink_otel import OtelSettings, OtelSink, ReportOnce, traces_endpoint
from quartermaster_engine import FlowRunner, NodeResult, SimpleNodeRegistry
from quartermaster_engine.cli import main
from quartermaster_engine.config import ConfigError
from quartermaster_engine.plugins.loader import load_plugins

ROOT = Path(__file__).resolve().parents[2]


def test_the_package_registers_the_otel_sink() -> None:
    [info] = [p for p in load_plugins().plugins if p.distribution == "qm-sink-otel"]
    assert info.error is None
    assert info.hooks == ["qm_register_event_sinks"]
    assert info.provides == {"event_sink": ["otel"]}
    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    [entry] = [p for p in json.loads(result.output)["plugins"] if p["name"] == "otel"]
    assert entry["distribution"] == "qm-sink-otel"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"endpont": "x"}, "setting 'endpont': Extra inputs are not permitted"),
        ({"sampling": 2}, "setting 'sampling': Input should be less than or equal to 1"),
        ({"protocol": "thrift"}, "setting 'protocol': Input should be 'http/protobuf' or 'grpc'"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(
    setting: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        FlowRunner.from_config(chain(3), {"sinks": [{"name": "otel", **setting}]})
    text = str(caught.value)
    assert text.startswith("event sink 'otel' of qm-sink-otel ")
    assert message in text


def test_the_http_endpoint_is_a_base_url_or_the_traces_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert traces_endpoint(OtelSettings()) == "http://localhost:4318/v1/traces"
    assert traces_endpoint(OtelSettings(endpoint="http://c:4318/")) == "http://c:4318/v1/traces"
    assert traces_endpoint(OtelSettings(endpoint="https://x/otlp")) == "https://x/otlp/v1/traces"
    assert traces_endpoint(OtelSettings(endpoint="http://c/v1/traces")) == "http://c/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318")
    assert traces_endpoint(OtelSettings()) == "http://env:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://env:9/traces")
    assert traces_endpoint(OtelSettings()) == "http://env:9/traces"
    assert traces_endpoint(OtelSettings(protocol="grpc", endpoint="http://g:4317")) == (
        "http://g:4317"
    )


def test_the_protocol_chooses_the_exporter_and_headers_stay_secret() -> None:
    http = OtelSink(OtelSettings(endpoint="http://127.0.0.1:9", headers={"k": "s3cret"}))
    grpc_sink = OtelSink(OtelSettings(endpoint="http://127.0.0.1:9", protocol="grpc"))
    try:
        assert isinstance(http.exporter, ReportOnce)
        assert isinstance(http.exporter.exporter, HttpExporter)
        assert isinstance(grpc_sink.exporter, ReportOnce)
        assert isinstance(grpc_sink.exporter.exporter, GrpcExporter)
        assert "s3cret" not in repr(http.settings)
        assert http.settings.plain_headers() == {"k": "s3cret"}
    finally:
        http.close()
        grpc_sink.close()


class _Collector(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.metadata: list[dict[str, str]] = []

    def Export(self, request: object, context: grpc.ServicerContext) -> object:
        self.requests.append(request)  # type: ignore[arg-type]
        self.metadata.append({k: v for k, v in context.invocation_metadata()})
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def grpc_collector() -> Iterator[tuple[_Collector, int]]:
    collector = _Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    assert port != 0, "the gRPC collector could not bind a port"
    server.start()
    yield collector, port
    server.stop(grace=None)


def test_spans_reach_a_grpc_collector(grpc_collector: tuple[_Collector, int]) -> None:
    collector, port = grpc_collector
    config = {
        "sinks": [
            {
                "name": "otel",
                "protocol": "grpc",
                "endpoint": f"http://127.0.0.1:{port}",
                "headers": {"x-api-key": "s3cret"},
            }
        ]
    }
    registry = SimpleNodeRegistry({"step": lambda ctx: NodeResult(output_text="ok")})
    with FlowRunner.from_config(chain(3), config, node_registry=registry) as runner:
        result = runner.run("x")
    [request] = collector.requests
    spans = [
        span
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    names = sorted(span.name for span in spans)
    assert names == ["invoke_agent test-graph", "node End", "node Start", "node n0"]
    [flow] = [span for span in spans if not span.parent_span_id]
    assert flow.trace_id == result.flow_id.bytes
    assert collector.metadata[0]["x-api-key"] == "s3cret"


def test_docs_and_readmes_cover_the_sink() -> None:
    docs = (ROOT / "docs" / "sink-otel.md").read_text()
    for name in [*OtelSettings.model_fields, "invoke_agent", "chat", "execute_tool"]:
        assert f"`{name}" in docs, name
    assert f"semantic conventions\n**{qm_sink_otel.SEMCONV_VERSION}**" in docs
    assert "docs/sink-otel.md" in (qm_sink_otel.__doc__ or "")
    assert "plugins/qm-sink-otel/README.md" in (ROOT / "README.md").read_text()
