"""Trace and span ids derived from flow ids.

A flow's trace id is its flow id (a UUID is 128 bits, like a trace id), and its flow
span's id is a 64-bit hash of the flow id. Any process that continues the flow (a
resume, a recovery, a worker running some of its nodes) therefore knows where its spans
belong without reading anything from the store: under the flow span, in the flow's
trace. A child flow (a sub-graph) is in its root flow's trace; its own flow span id is
derived from its own id.
"""

from __future__ import annotations

import hashlib
import threading
from uuid import UUID

from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator


def flow_trace_id(flow_id: UUID) -> int:
    """The trace id of a root flow: its id as a 128-bit number."""
    return flow_id.int or 1


def flow_span_id(flow_id: UUID) -> int:
    """The span id of a flow's span."""
    digest = hashlib.blake2b(flow_id.bytes, digest_size=8, person=b"qm-flow-span").digest()
    return int.from_bytes(digest, "big") or 1


def child_wait_span_id(child_flow_id: UUID) -> int:
    """The span id of the node run that waited for the fleet child ``child_flow_id``
    (its child's flow span is under it, whichever comes first)."""
    digest = hashlib.blake2b(child_flow_id.bytes, digest_size=8, person=b"qm-child-wait").digest()
    return int.from_bytes(digest, "big") or 1


class PlannedIds(IdGenerator):
    """Random ids, except for the next span started by this thread after `plan`."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()
        self._next = threading.local()

    def plan(self, span_id: int, trace_id: int | None = None) -> None:
        """The next span this thread starts gets ``span_id`` (and, as a root, ``trace_id``)."""
        self._next.span_id = span_id
        self._next.trace_id = trace_id

    def clear(self) -> None:
        """Forget a plan (the span was started, or not)."""
        self._next.span_id = None
        self._next.trace_id = None

    def generate_span_id(self) -> int:
        planned: int | None = getattr(self._next, "span_id", None)
        if planned is None:
            return self._random.generate_span_id()
        self._next.span_id = None
        return planned

    def generate_trace_id(self) -> int:
        planned: int | None = getattr(self._next, "trace_id", None)
        if planned is None:
            return self._random.generate_trace_id()
        self._next.trace_id = None
        return planned

    def is_trace_id_random(self) -> bool:
        # Trace ids are flow ids: random UUIDs, but with fixed version bits.
        return False
