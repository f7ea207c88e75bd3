"""Plugin module (entry point ``otel`` of group ``quartermaster``): the ``otel`` sink."""

from __future__ import annotations

from qm_sink_otel.settings import OtelSettings
from qm_sink_otel.sink import OtelSink
from quartermaster_engine.plugins import Register, hookimpl


def _otel(settings: OtelSettings) -> OtelSink:
    """OpenTelemetry traces of flows, nodes, LLM and tool calls, over OTLP."""
    return OtelSink.from_settings(settings)


@hookimpl
def qm_register_event_sinks(register: Register) -> None:
    register("otel", _otel, config_model=OtelSettings)
