"""How records become statement arguments and rows become records.

Records, activations, memory values and histories travel as JSON text (the
engine's ``to_dict`` forms) into JSONB columns; ids are native ``uuid``
values. The commit's arguments are the parameters of ``qm_commit`` (see
`schema`), arrays for the parts that come in numbers, NULL for empty parts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

import orjson

from quartermaster_engine.context.node_execution import NodeExecution
from quartermaster_engine.events import FlowEvent, event_from_dict
from quartermaster_engine.stores.base import StoreDataError
from quartermaster_engine.stores.changes import change_to_dict
from quartermaster_engine.stores.records import Commit
from quartermaster_engine.types import Message

# orjson: a node commit encodes a record and an activation; the stdlib takes
# several times longer. Non-string keys become strings, as with the json module.
_OPTIONS = orjson.OPT_NON_STR_KEYS
loads = orjson.loads


def dumps(value: Any, what: str) -> str:
    """Compact JSON text of ``value``; a StoreDataError naming ``what`` if it is not
    JSON data."""
    try:
        return orjson.dumps(value, option=_OPTIONS).decode()
    except TypeError as exc:
        raise StoreDataError(f"{what} cannot be stored as JSON: {exc}") from None


def encode_record(rec: NodeExecution) -> str:
    return dumps(rec.to_dict(), f"the record of node {rec.node_id} (visit {rec.visit})")


def decode_records(body: str | None) -> list[NodeExecution]:
    """Records from a JSON array of record bodies (``json_agg``)."""
    return [NodeExecution.from_dict(d) for d in loads(body)] if body else []


def encode_messages(messages: list[Message]) -> str:
    return dumps([m.to_dict() for m in messages], "the messages")


def decode_messages(body: str) -> list[Message]:
    return [Message.from_dict(m) for m in loads(body)]


def commit_args(
    flow_id: UUID, commit: Commit, touch: float | None, order: Iterator[int]
) -> tuple[Any, ...]:
    """The 29 arguments of ``qm_commit`` for ``commit``; ``order`` numbers queued
    activations (queue order survives a reload)."""
    done = commit.done
    rec = commit.record
    args: list[Any] = [flow_id, touch, commit.epoch]
    if done is None:
        args += (None, None, None)
    else:
        args += (done[0], done[1], None if rec is None else rec.attempt)
    answers = commit.answers
    args += (None, None) if answers is None else answers
    if rec is None:
        args += (None, None, None)
    else:
        args += (rec.node_id, rec.status.value, encode_record(rec))
    memory = commit.memory
    if memory:
        args += (
            list(memory),
            [dumps(v, f"flow memory {k!r}") for k, v in memory.items()],
        )
    else:
        args += (None, None)
    args += _deliveries(commit.deliveries)
    closed = commit.closed
    if closed:
        args += ([t for t, _ in closed], [s for _, s in closed])
    else:
        args += (None, None)
    enqueue = commit.enqueue
    if enqueue:
        args += (
            [a.node_id for a in enqueue],
            [a.visit for a in enqueue],
            [next(order) for _ in enqueue],
            [dumps(a.to_dict(), f"activation {a!r}") for a in enqueue],
        )
    else:
        args += (None, None, None, None)
    args.append(list(commit.loop_resets) if commit.loop_resets else None)
    exits = commit.loop_exits
    if exits:
        args += ([h for h, _ in exits], [e for _, e in exits])
    else:
        args += (None, None)
    args += event_args(commit.events)
    keep = commit.keep_change
    args.append(dumps(change_to_dict(commit), "the commit's change") if keep else None)
    return tuple(args)


def count_args(commit: Commit) -> tuple[Any, ...]:
    """The 10 arguments ``qm_commit_counted`` takes after ``qm_commit``'s: the commit's
    usage counts, its token counts, then the keys and holders of the slots it gives
    up, as arrays (NULL when there are none)."""
    usage, tokens = commit.key_usage, commit.key_tokens
    use: tuple[Any, ...] = (None, None, None, None)
    if usage:
        use = (
            [u.key for u in usage],
            [int(u.node_runs) for u in usage],
            [int(u.tokens) for u in usage],
            [float(u.cost) for u in usage],
        )
    tok: tuple[Any, ...] = (None, None, None, None)
    if tokens:
        tok = (
            [t.key for t in tokens],
            [int(t.tokens) for t in tokens],
            [float(t.at) for t in tokens],
            [float(t.per) for t in tokens],
        )
    release = commit.release_slots
    rel: tuple[Any, ...] = (None, None)
    if release:
        rel = ([k for k, _ in release], [h for _, h in release])
    return use + tok + rel


def event_args(events: Sequence[FlowEvent]) -> tuple[list[int] | None, list[str] | None]:
    """The events' numbers and JSON bodies, as two arrays (NULL when there are none)."""
    if not events:
        return (None, None)
    return (
        [e.seq for e in events],
        [dumps(e.to_dict(), f"event {e.type} {e.seq}") for e in events],
    )


def decode_events(body: str | None) -> list[FlowEvent]:
    """Events from a JSON array of event bodies (``json_agg``)."""
    return [event_from_dict(d) for d in loads(body)] if body else []


def _deliveries(deliveries: Any) -> tuple[Any, ...]:
    if not deliveries:
        return (None, None, None, None, None)
    targets, slots, edges, sources, visits = [], [], [], [], []
    for d in deliveries:
        targets.append(d.target)
        slots.append(d.slot)
        edges.append(d.edge)
        source = d.source
        sources.append(None if source is None else source[0])
        visits.append(0 if source is None else source[1])
    return (targets, slots, edges, sources, visits)


def plain_uuid(value: UUID) -> UUID:
    """asyncpg's own UUID type as a `uuid.UUID`."""
    return value if type(value) is UUID else UUID(int=value.int)
