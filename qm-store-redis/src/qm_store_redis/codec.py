"""How records become Redis values and back."""

from __future__ import annotations

import hashlib
from typing import Any
from uuid import UUID

import orjson

from quartermaster_engine.events import FlowEvent
from quartermaster_engine.stores.base import StoreDataError
from quartermaster_engine.stores.records import ActivationKey, Delivery, FlowRecord, FlowStatus
from quartermaster_graph.models import GraphSpec

# orjson: a node commit encodes two records; the stdlib takes ten times longer.
# Non-string keys become strings, as with the json module.
_OPTIONS = orjson.OPT_NON_STR_KEYS
loads = orjson.loads


def dumps(value: Any, what: str) -> bytes:
    """Compact JSON (UTF-8) of ``value``; a StoreDataError naming ``what`` if it is not
    JSON data."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except TypeError as exc:
        raise StoreDataError(f"{what} cannot be stored as JSON: {exc}") from None


def event_json(event: FlowEvent) -> bytes:
    """An event as the JSON a flow's event log holds."""
    return dumps(event.to_dict(), f"event {event.type}")


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def as_dict(reply: Any) -> dict[bytes, bytes]:
    """A hash reply as a dict: a flat RESP2 array, or what redis-py's cluster
    client already made of one."""
    if isinstance(reply, dict):
        return reply
    return {reply[i]: reply[i + 1] for i in range(0, len(reply), 2)}


def activation_field(key: ActivationKey) -> str:
    """The pending-queue field of an activation (node id, visit)."""
    return f"{key[0]}:{key[1]}"


def slot_field(target: UUID, slot: int) -> str:
    """The joins field of one join slot of ``target``."""
    return f"{target}:{slot}"


def delivery_line(delivery: Delivery) -> str:
    """One delivery within its slot's value: a line naming the edge and its source."""
    source = delivery.source
    if source is None:
        return f"|{delivery.edge} -"
    return f"|{delivery.edge} {source[0]}:{source[1]}"


def parse_slot(field: bytes | str, value: bytes | str) -> list[Delivery]:
    """The deliveries stored in one joins field, in delivery order."""
    target, _, slot = text(field).rpartition(":")
    target_id, slot_no = UUID(target), int(slot)
    out: list[Delivery] = []
    for line in text(value).split("|"):
        if not line:
            continue
        edge, _, source = line.partition(" ")
        key: ActivationKey | None = None
        if source != "-":
            node, _, visit = source.rpartition(":")
            key = (UUID(node), int(visit))
        out.append(Delivery(target_id, slot_no, UUID(edge), key))
    return out


def graph_json(graph: GraphSpec) -> tuple[str, str]:
    """(content hash, JSON) of a graph: equal graphs share one stored copy.

    pydantic writes fields in declaration order, so equal graphs give equal JSON
    for a given engine version (another version at worst stores a second copy).
    """
    data = graph.model_dump_json()
    return hashlib.sha256(data.encode()).hexdigest()[:32], data


def flow_fields(record: FlowRecord, digest: str) -> list[str | bytes]:
    """The flow hash of a new flow as field, value, ... (strings: JSON where nullable)."""
    parent = record.parent_flow_id
    return [
        "status",
        record.status.value,
        "created_at",
        repr(record.created_at),
        "updated_at",
        repr(record.updated_at),
        "input",
        dumps(record.input, "the flow input"),
        "error",
        dumps(record.error, "the flow error"),
        "final_output",
        dumps(record.final_output, "the final output"),
        "event_seq",
        str(record.event_seq),
        "parent",
        dumps(None if parent is None else str(parent), "the parent flow id"),
        "graph",
        digest,
        "version",
        str(record.version),
        "lease_owner",
        record.lease_owner or "",
        "lease_epoch",
        str(record.lease_epoch),
        "lease_expires",
        repr(record.lease_expires),
    ]


def flow_record(fields: dict[bytes, bytes], flow_id: UUID, graph: GraphSpec) -> FlowRecord:
    """The `FlowRecord` of a flow hash read back with HGETALL."""
    parent = loads(fields[b"parent"])
    return FlowRecord(
        flow_id=flow_id,
        graph=graph,
        input=loads(fields[b"input"]),
        status=FlowStatus(fields[b"status"].decode()),
        created_at=float(fields[b"created_at"]),
        updated_at=float(fields[b"updated_at"]),
        error=loads(fields[b"error"]),
        final_output=loads(fields[b"final_output"]),
        event_seq=int(fields[b"event_seq"]),
        parent_flow_id=None if parent is None else UUID(parent),
        version=int(fields.get(b"version", 0)),
        lease_owner=text(fields[b"lease_owner"]) or None if b"lease_owner" in fields else None,
        lease_epoch=int(fields.get(b"lease_epoch", 0)),
        lease_expires=float(fields.get(b"lease_expires", 0.0)),
    )
