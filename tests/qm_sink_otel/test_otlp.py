"""The OTLP/HTTP exporter on the wire: a receiver started by the test decodes what the
sink sends (opentelemetry-proto), and a collector that does not answer is reported once."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator, Sequence

import pytest
from fake_openai import FakeOpenAI, completion
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from otel_support import completed_run
from otlp_receiver import OtlpReceiver
from support import build

from qm_sink_otel import SCHEMA_URL, OtelSettings, OtelSink, flow_span_id
from quartermaster_engine import (
    ExecutionContext,
    FlowRunner,
    FlowStatus,
    NodeResult,
    SimpleNodeRegistry,
)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver().start()
    yield server
    server.stop()


def step(ctx: ExecutionContext) -> NodeResult:
    return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")


def chain() -> object:
    return build(
        {"Start": "Start1", "A": "step", "End": "End1"},
        [("Start", "A"), ("A", "End")],
        name="wire",
    )


def values(attributes: object) -> dict[str, object]:
    """OTLP KeyValues as a dict of typed values."""
    out: dict[str, object] = {}
    for kv in attributes:  # type: ignore[attr-defined]
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind)
    return out


def test_the_configured_sink_sends_otlp_protobuf_that_decodes(receiver: OtlpReceiver) -> None:
    config = {
        "sinks": [
            {
                "name": "otel",
                "endpoint": receiver.endpoint,
                "headers": {"x-api-key": "s3cret"},
                "service_name": "wire-test",
            }
        ]
    }
    registry = SimpleNodeRegistry({"step": step})
    with FlowRunner.from_config(chain(), config, node_registry=registry) as runner:
        result = runner.run("x")
    # Leaving the block closed the sink, which exported what was pending.
    assert result.status is FlowStatus.COMPLETED
    assert receiver.paths == ["/v1/traces"]
    assert receiver.headers[0]["content-type"] == "application/x-protobuf"
    assert receiver.headers[0]["x-api-key"] == "s3cret"

    [request] = receiver.requests
    [resource_spans] = request.resource_spans
    assert values(resource_spans.resource.attributes)["service.name"] == "wire-test"
    [scope_spans] = resource_spans.scope_spans
    assert scope_spans.scope.name == "qm_sink_otel"
    assert scope_spans.schema_url == SCHEMA_URL
    spans = {span.name: span for span in scope_spans.spans}
    assert sorted(spans) == ["invoke_agent wire", "node A", "node End", "node Start"]
    flow = spans["invoke_agent wire"]
    assert flow.trace_id == result.flow_id.bytes
    assert flow.span_id == flow_span_id(result.flow_id).to_bytes(8, "big")
    assert flow.parent_span_id == b""
    for name in ("node Start", "node A", "node End"):
        assert spans[name].trace_id == result.flow_id.bytes
        assert spans[name].parent_span_id == flow.span_id
    assert values(spans["node A"].attributes) == completed_run("A", "step")
    assert spans["node A"].start_time_unix_nano >= flow.start_time_unix_nano
    assert spans["node A"].end_time_unix_nano <= flow.end_time_unix_nano


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_collector_is_reported_once_and_flows_run_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    config = {"sinks": [{"name": "otel", "endpoint": endpoint, "timeout": 0.5}]}
    registry = SimpleNodeRegistry({"step": step})
    caplog.set_level(logging.DEBUG)
    with FlowRunner.from_config(chain(), config, node_registry=registry) as runner:
        [sink] = runner.sinks
        outputs = []
        for i in range(3):
            outputs.append(runner.run(f"x{i}").final_output)
            assert sink.flush()  # an export (failing) per flow
    assert outputs == ["A(x0)", "A(x1)", "A(x2)"]
    assert sink.exporter.failed_batches == 3

    reports = [r for r in caplog.records if r.name == "qm_sink_otel"]
    assert [r.levelno for r in reports] == [logging.WARNING]
    # The reason is the exporter's first complaint: here, no answer within the timeout.
    assert reports[0].getMessage() == (
        f"otel sink: cannot export spans to {endpoint}/v1/traces (Failed to export spans "
        "batch due to timeout, max retries or shutdown.); spans are dropped while it fails "
        "(reported once)"
    )
    # The exporter's own per-batch complaints were not passed on.
    assert [r for r in caplog.records if r.name.startswith("opentelemetry")] == []


class Stuck(SpanExporter):
    """An exporter that does not return until it is let go: a collector that hangs."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.go.wait(30)
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.go.set()


def test_a_full_export_queue_is_reported_once_and_the_flow_runs_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stuck = Stuck()
    sink = OtelSink(OtelSettings(max_queue_size=4), exporter=stuck)
    caplog.set_level(logging.DEBUG)
    graph = build(
        {"Start": "Start1", **{f"n{i}": "step" for i in range(20)}, "End": "End1"},
        [("Start", "n0"), *((f"n{i}", f"n{i + 1}") for i in range(19)), ("n19", "End")],
        name="long",
    )
    try:
        result = FlowRunner(graph, SimpleNodeRegistry({"step": step}), sinks=[sink]).run("x")
        assert result.status is FlowStatus.COMPLETED
    finally:
        stuck.go.set()
        sink.close()
    reports = [r for r in caplog.records if r.name == "qm_sink_otel"]
    assert [r.getMessage() for r in reports] == [
        "otel sink: 4 ended spans are waiting for export; further spans are dropped until "
        "the queue drains (reported once)"
    ]
    assert [r for r in caplog.records if r.name.startswith("opentelemetry")] == []
    # 23 spans ended (20 nodes, Start, End, the flow); at most 4 + a batch got through.
    assert 0 < stuck.exported < 23


def llm_chain() -> object:
    spec = {"type": "Instruction1", "metadata": {"llm_model": "gpt-4o-mini", "llm_stream": False}}
    return build(
        {"Start": "Start1", "A": spec, "B": spec, "End": "End1"},
        [("Start", "A"), ("A", "B"), ("B", "End")],
        name="spend",
    )


#: The flow span's usage for two calls of 11 + 7 tokens at 2.5 and 10 EUR per million.
FLOW_USAGE = {
    "qm.flow.usage.node_runs": 4,
    "gen_ai.usage.input_tokens": 22,
    "gen_ai.usage.output_tokens": 14,
    "qm.flow.usage.tokens": 36,
    "qm.flow.usage.cost": pytest.approx((22 * 2.5 + 14 * 10.0) / 1_000_000),
    "qm.flow.usage.currency": "EUR",
}


@pytest.mark.parametrize("budgets", [True, False], ids=["budgets", "no-budgets"])
def test_a_finished_flow_span_carries_its_usage(
    receiver: OtlpReceiver, openai_server: FakeOpenAI, budgets: bool
) -> None:
    """Two LLM calls of 11 + 7 tokens (the fake server's usage): the flow span of an
    engine with budgets carries 4 node runs, 22 + 14 tokens and their cost priced
    by ``[budgets.prices]``; without budgets nothing counts usage, and the span has none."""
    openai_server.default = completion("ok", model="gpt-4o-mini")
    openai = {"base_url": openai_server.base_url, "api_key": "sk-test"}
    config: dict[str, object] = {
        "sinks": [{"name": "otel", "endpoint": receiver.endpoint}],
        "nodes": {"Instruction1": {"provider": "openai", "providers": {"openai": openai}}},
    }
    if budgets:
        prices = {"gpt-4o-*": {"input": 2.5, "output": 10.0}}
        config["budgets"] = {"max_tokens": 10_000, "currency": "EUR", "prices": prices}
    with FlowRunner.from_config(llm_chain(), config) as runner:
        result = runner.run("x")
    assert result.status is FlowStatus.COMPLETED
    spans = {s.name: s for r in receiver.requests for s in r.resource_spans[0].scope_spans[0].spans}
    flow = values(spans["invoke_agent spend"].attributes)
    usage = {k: v for k, v in flow.items() if "usage" in k}
    if not budgets:
        assert usage == {}
        return
    assert usage == FLOW_USAGE


def test_a_finished_flow_span_carries_its_keys_usage(
    receiver: OtlpReceiver, openai_server: FakeOpenAI
) -> None:
    """A key budget only (no flow budget): the flow span carries the flow's usage (4
    node runs, 22 + 14 tokens) and the key's totals across flows, which the LLM
    nodes declare (``llm:openai:gpt-4o-mini``): after two flows, 4 runs and 72 tokens."""
    openai_server.default = completion("ok", model="gpt-4o-mini")
    openai = {"base_url": openai_server.base_url, "api_key": "sk-test"}
    prices = {"gpt-4o-*": {"input": 2.5, "output": 10.0}}
    config: dict[str, object] = {
        "sinks": [{"name": "otel", "endpoint": receiver.endpoint}],
        "nodes": {"Instruction1": {"provider": "openai", "providers": {"openai": openai}}},
        "budgets": {"currency": "EUR", "prices": prices, "llm:openai:*": {"max_tokens": 1000}},
    }
    with FlowRunner.from_config(llm_chain(), config) as runner:
        assert runner.run("x").status is FlowStatus.COMPLETED
        assert runner.run("y").status is FlowStatus.COMPLETED
    spans = [
        s
        for r in receiver.requests
        for s in r.resource_spans[0].scope_spans[0].spans
        if s.name == "invoke_agent spend"
    ]
    assert len(spans) == 2
    last = values(max(spans, key=lambda s: s.end_time_unix_nano).attributes)
    key = "qm.key.llm:openai:gpt-4o-mini.usage."
    assert {k: v for k, v in last.items() if "usage" in k} == {
        **FLOW_USAGE,
        key + "node_runs": 4,
        key + "tokens": 72,
        key + "cost": pytest.approx(2 * (22 * 2.5 + 14 * 10.0) / 1_000_000),
        key + "currency": "EUR",
    }
