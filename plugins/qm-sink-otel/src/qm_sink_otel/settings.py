"""`OtelSettings`: the ``[[sinks]]`` entry of the ``otel`` sink."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

Protocol = Literal["http/protobuf", "grpc"]


class OtelSettings(BaseModel):
    """Settings of the ``otel`` sink.

    - ``endpoint``: the collector. For ``http/protobuf`` a base URL
      (``http://collector:4318``; ``/v1/traces`` is appended) or the full traces
      URL (a URL whose path ends in ``/v1/traces``); for ``grpc`` the collector's
      URL (``http://collector:4317``; ``http`` means no TLS). Default: the
      ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``
      environment variables, else the local collector's default port.
    - ``protocol``: ``http/protobuf`` (default) or ``grpc`` (extra ``grpc``).
    - ``headers``: sent with every export (API keys of hosted backends); merged
      over ``OTEL_EXPORTER_OTLP_HEADERS``.
    - ``service_name``: the resource's ``service.name``.
    - ``sampling``: the fraction of flows traced (0 to 1), decided from the trace
      id, so every process continuing a flow decides alike.
    - ``record_content``: put prompts, answers, flow input and output, tool
      arguments and results on the spans. Off by default: they may hold personal data.
    - ``timeout``: seconds one export may take, retries included (in the export
      thread; a flow never waits for it).
    - ``max_queue_size``: ended spans kept waiting for export; past it, spans are
      dropped (reported once).
    """

    model_config = ConfigDict(extra="forbid")

    endpoint: str | None = None
    protocol: Protocol = "http/protobuf"
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    service_name: str = "quartermaster"
    sampling: float = Field(default=1.0, ge=0.0, le=1.0)
    record_content: bool = False
    timeout: float = Field(default=10.0, gt=0)
    max_queue_size: int = Field(default=2048, ge=1)

    def plain_headers(self) -> dict[str, str]:
        """The headers with their secret values."""
        return {name: value.get_secret_value() for name, value in self.headers.items()}
