"""Where spans go: the OTLP exporter the settings ask for, wrapped so that a collector
that does not answer is reported once, in one log line, instead of on every batch."""

from __future__ import annotations

import os
from collections.abc import Sequence
from urllib.parse import urlsplit

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from qm_sink_otel.reporting import Listening, Once
from qm_sink_otel.settings import OtelSettings

_HTTP_DEFAULT = "http://localhost:4318"
_GRPC_DEFAULT = "http://localhost:4317"
_TRACES_PATH = "/v1/traces"


class MissingExtraError(RuntimeError):
    """The settings ask for an exporter whose package is not installed."""


def traces_endpoint(settings: OtelSettings) -> str:
    """The URL spans are sent to, with the OTLP environment variables' fallbacks."""
    env = os.environ
    if settings.protocol == "grpc":
        return (
            settings.endpoint
            or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or _GRPC_DEFAULT
        )
    if settings.endpoint is None:
        full = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        if full:
            return full
        base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or _HTTP_DEFAULT
    else:
        base = settings.endpoint
        if urlsplit(base).path.rstrip("/").endswith(_TRACES_PATH):
            return base
    return base.rstrip("/") + _TRACES_PATH


def otlp_exporter(settings: OtelSettings) -> SpanExporter:
    """The OTLP span exporter of ``settings`` (protocol, endpoint, headers, timeout)."""
    endpoint = traces_endpoint(settings)
    headers = settings.plain_headers() or None
    if settings.protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError:
            raise MissingExtraError(
                'the otel sink\'s protocol "grpc" needs its grpc extra: '
                'pip install "qm-sink-otel[grpc]"'
            ) from None
        return GrpcExporter(
            endpoint=endpoint,
            insecure=urlsplit(endpoint).scheme == "http",
            headers=headers,
            timeout=settings.timeout,
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, headers=headers, timeout=settings.timeout)


class ReportOnce(SpanExporter):
    """Delegates to ``exporter``; the first failed export is logged once (a warning of
    logger ``qm_sink_otel`` naming ``where`` and the reason), later ones silently drop
    their spans. Exceptions of the exporter count as failures."""

    def __init__(self, exporter: SpanExporter, where: str) -> None:
        self.exporter = exporter
        self.where = where
        self.failed_batches = 0
        self._listening = Listening()
        self._failure = Once()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        heard = self._listening.start()
        try:
            result = self.exporter.export(spans)
        except Exception as exc:
            heard.append(f"{type(exc).__name__}: {exc}")
            result = SpanExportResult.FAILURE
        finally:
            self._listening.stop()
        if result is not SpanExportResult.SUCCESS:
            self.failed_batches += 1
            reason = heard[0] if heard else "the export failed"
            self._failure.give(
                f"otel sink: cannot export spans to {self.where} ({reason}); spans are "
                "dropped while it fails (reported once)"
            )
        return result

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)
