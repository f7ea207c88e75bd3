"""Helpers of the otel sink tests: spans as trees of names, and by name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import node_id

from qm_sink_otel import OtelSettings, OtelSink

Tree = tuple[str, list["Tree"]]


class Spans:
    """An `OtelSink` on an in-memory exporter."""

    def __init__(self, **settings: Any) -> None:
        self.exporter = InMemorySpanExporter()
        self.sink = OtelSink(OtelSettings(**settings), exporter=self.exporter)

    def finished(self) -> list[ReadableSpan]:
        """Every span exported so far (after a flush), in end order."""
        assert self.sink.flush()
        return list(self.exporter.get_finished_spans())

    def tree(self) -> list[Tree]:
        return tree(self.finished())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        [span] = self.named(name)
        return span


def tree(spans: Sequence[ReadableSpan]) -> list[Tree]:
    """Spans as ``(name, children)`` trees, children in start order; spans whose parent
    is not among ``spans`` are roots."""
    ids = {s.context.span_id for s in spans}
    kids: dict[int | None, list[ReadableSpan]] = {}
    for s in spans:
        parent = s.parent.span_id if s.parent is not None else None
        kids.setdefault(parent if parent in ids else None, []).append(s)

    def build(parent: int | None) -> list[Tree]:
        found = sorted(kids.get(parent, []), key=lambda s: (s.start_time or 0, s.name))
        return [(s.name, build(s.context.span_id)) for s in found]

    return build(None)


def leaf(*names: str) -> list[Tree]:
    """Childless spans."""
    return [(name, []) for name in names]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    """A span's attributes as a plain dict (sequences as lists)."""
    return _plain(span.attributes)


def events(span: ReadableSpan) -> list[tuple[str, dict[str, Any]]]:
    """A span's events as (name, attributes) pairs."""
    return [(e.name, _plain(e.attributes)) for e in span.events]


def _plain(attributes: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in (attributes or {}).items()}


def completed_run(name: str, node_type: str) -> dict[str, Any]:
    """The attributes of the span of a first run of node ``name`` that completed."""
    return {
        "qm.node.id": str(node_id(name)),
        "qm.node.name": name,
        "qm.node.type": node_type,
        "qm.node.visit": 1,
        "qm.node.attempt": 1,
        "qm.node.status": "completed",
    }
