"""Row forms of the engine's records.

Encoding is on the per-node commit path, so the common case allocates little:
scalar fields are columns, activation keys are compact text
(``"<32 hex>:<visit>;..."``) rather than JSON, and JSON is only used for what is
rarely there (output data, messages other than the output, options). Ids in
indexed columns are 16-byte blobs.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus
from quartermaster_engine.stores.records import Activation, ActivationKey, Delivery
from quartermaster_engine.types import Message, MessageRole

# One encoder object, reused: json.dumps with non-default options builds a new
# encoder per call, which costs more than encoding a small value.
dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
loads = json.loads

_STATUS = {s.value: s for s in NodeStatus}
_ROLE = {r.value: r for r in MessageRole}

#: The record columns of qm_records, in `encode_record`'s order.
RECORD_COLUMNS = (
    "node_id, visit, attempt, status, result, error, started, finished, user_input, "
    "inputs, parents, messages, out_role, data"
)
#: The activation columns of qm_pending (after flow_id), in `encode_activation`'s order.
PENDING_COLUMNS = (
    "node_id, visit, seq, attempt, inputs, not_before, waiting, prompt, options, user_input"
)


def encode_keys(keys: tuple[ActivationKey, ...]) -> str:
    """``((id, 2),)`` -> ``"<hex>:2"``; several are joined with ``;``."""
    if not keys:
        return ""
    if len(keys) == 1:
        node, visit = keys[0]
        return f"{node.hex}:{visit}"
    return ";".join([f"{node.hex}:{visit}" for node, visit in keys])


def decode_keys(text: str) -> tuple[ActivationKey, ...]:
    if not text:
        return ()
    keys = []
    for part in text.split(";"):
        node, _, visit = part.partition(":")
        keys.append((UUID(hex=node), int(visit)))
    return tuple(keys)


def _message_out(message: Message) -> Any:
    if message.name or message.tool_call_id or message.tool_calls or message.metadata:
        return message.to_dict()
    return [message.role.value, message.content]


def _message_in(data: Any) -> Message:
    if type(data) is list:
        return Message(_ROLE[data[0]], data[1])
    return Message.from_dict(data)


def encode_messages(messages: list[Message] | tuple[Message, ...]) -> str:
    return dumps([_message_out(m) for m in messages])


def decode_messages(body: str) -> list[Message]:
    return [_message_in(m) for m in loads(body)]


def _is_plain(message: Message) -> bool:
    return not (message.name or message.tool_call_id or message.tool_calls or message.metadata)


#: A qm_records row without its flow id and number; see `RECORD_COLUMNS`.
RecordRow = tuple[Any, ...]


def encode_record(rec: NodeExecution) -> RecordRow:
    """A record as the values of `RECORD_COLUMNS`.

    The output message that ends a record's messages repeats ``result``: it is
    stored as its role only (``out_role``), so a long output is stored once.
    """
    messages = rec.messages
    result = rec.result
    out_role = None
    if messages:
        last = messages[-1]
        if (last.content is result or last.content == (result or "")) and _is_plain(last):
            out_role = last.role.value
            messages = messages[:-1]
    data = rec.output_data
    return (
        rec.node_id.bytes,
        rec.visit,
        rec.attempt,
        rec.status.value,
        result,
        rec.error,
        rec.started,
        rec.finished,
        rec.user_input,
        encode_keys(rec.inputs),
        encode_keys(rec.history_parents),
        encode_messages(messages) if messages else None,
        out_role,
        dumps(data) if data else None,
    )


def decode_record(
    node_id: bytes,
    visit: int,
    attempt: int,
    status: str,
    result: str | None,
    error: str | None,
    started: float | None,
    finished: float | None,
    user_input: str | None,
    inputs: str,
    parents: str,
    messages: str | None,
    out_role: str | None,
    data: str | None,
) -> NodeExecution:
    own = decode_messages(messages) if messages else []
    if out_role is not None:
        own.append(Message(_ROLE[out_role], result or ""))
    return NodeExecution(
        UUID(bytes=node_id),
        _STATUS[status],
        visit=visit,
        attempt=attempt,
        result=result,
        error=error,
        output_data=loads(data) if data else {},
        started=started,
        finished=finished,
        inputs=decode_keys(inputs),
        messages=tuple(own),
        history_parents=decode_keys(parents),
        user_input=user_input,
    )


def encode_activation(fid: bytes, act: Activation, seq: int) -> tuple[Any, ...]:
    """A qm_pending row: the flow id, then the values of `PENDING_COLUMNS`."""
    options = act.options
    return (
        fid,
        act.node_id.bytes,
        act.visit,
        seq,
        act.attempt,
        encode_keys(act.inputs),
        act.not_before,
        act.waiting,
        act.prompt,
        None if options is None else dumps(options),
        act.user_input,
    )


def decode_activation(
    node_id: bytes,
    visit: int,
    seq: int,
    attempt: int,
    inputs: str,
    not_before: float,
    waiting: int,
    prompt: str,
    options: str | None,
    user_input: str | None,
) -> Activation:
    return Activation(
        UUID(bytes=node_id),
        visit,
        attempt,
        decode_keys(inputs),
        not_before=not_before,
        waiting=bool(waiting),
        prompt=prompt,
        options=None if options is None else loads(options),
        user_input=user_input,
    )


def encode_delivery(fid: bytes, d: Delivery) -> tuple[bytes, bytes, int, bytes, bytes | None, int]:
    """A qm_deliveries row; a dead signal has no source node (visit 0)."""
    source = d.source
    if source is None:
        return (fid, d.target.bytes, d.slot, d.edge.bytes, None, 0)
    return (fid, d.target.bytes, d.slot, d.edge.bytes, source[0].bytes, source[1])


def decode_delivery(
    target: bytes, slot: int, edge: bytes, source: bytes | None, visit: int
) -> Delivery:
    return Delivery(
        UUID(bytes=target),
        slot,
        UUID(bytes=edge),
        None if source is None else (UUID(bytes=source), visit),
    )
