"""Trouble reported once. The OTLP exporters log every failed batch and the SDK's batch
processor every span it drops; the sink collects those records instead, on the threads
where it works (its export thread, and the thread handling an event), and reports each
kind of trouble once per sink as a warning of logger ``qm_sink_otel``. Records logged
elsewhere (another tracer provider of the application) pass untouched."""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("qm_sink_otel")

#: Loggers through which the SDK and the OTLP exporters report failures.
SDK_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.sdk._shared_internal",
)


class _Collect(logging.Filter):
    """Keeps the records of registered threads out of the logs, collecting their text."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: dict[int, list[str]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        heard = self.threads.get(record.thread or 0)
        if heard is None:
            return True
        heard.append(record.getMessage())
        return False


_collect = _Collect()
_installed = False
_install_lock = threading.Lock()


def _install() -> None:
    global _installed
    with _install_lock:
        if not _installed:
            for name in SDK_LOGGERS:
                logging.getLogger(name).addFilter(_collect)
            _installed = True


class Listening:
    """Collects what the SDK logs on the calling thread between `start` and `stop`."""

    def __init__(self) -> None:
        _install()

    @staticmethod
    def start() -> list[str]:
        heard: list[str] = []
        _collect.threads[threading.get_ident()] = heard
        return heard

    @staticmethod
    def stop() -> None:
        _collect.threads.pop(threading.get_ident(), None)


class Once:
    """A warning given at most once."""

    def __init__(self) -> None:
        self.given = False

    def give(self, message: str) -> None:
        if not self.given:
            self.given = True
            logger.warning("%s", message)
