"""What changed of a flow since a version: the answer of the `ReadsChanges` ability.

A commit marked ``keep_change`` (the commits of a `FlowStepper`'s runs) leaves,
in the same atomic write, its change to the flow's frontier: the activation it
took out of the queue, the activations it queued, its join deliveries and
closed slots, its loop marks and its memory writes. A process holding the flow's
state as of version ``v`` then reads only the changes of the commits after
``v`` (and the records committed since) instead of the whole frontier.

Stores keep the last `KEPT_CHANGES` changes of a flow and drop them when the
flow ends; a reader whose version is older, or that finds a commit without a
kept change in between, reads the flow whole (`FlowChanges.commits` is None).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from quartermaster_engine.context.node_execution import NodeExecution
from quartermaster_engine.stores.records import Activation, Commit, Delivery, FlowRecord

#: How many of a flow's latest changes a store keeps.
KEPT_CHANGES = 256


@dataclass(slots=True)
class FlowChanges:
    """A flow's record and what its commits after a version changed, read at one instant.

    ``records`` are the flow's records numbered above the ``records_after`` asked
    for; ``record_count`` is how many it has in all. ``commits`` holds, in order,
    the frontier part (``done``, ``memory``, ``deliveries``, ``closed``,
    ``enqueue``, ``loop_exits``, ``loop_resets``) of each commit after the
    version asked for up to ``flow.version``; None when the store does not hold
    every one of them (not kept, or dropped since): the reader reads the flow whole.
    While ``flow.version`` is still the version asked for, nothing changed:
    ``records`` and ``commits`` are empty (the store reads the flow's record only).
    """

    flow: FlowRecord
    records: list[NodeExecution]
    record_count: int
    commits: list[Commit] | None


def change_to_dict(commit: Commit) -> dict[str, Any]:
    """The frontier part of ``commit`` as JSON-ready data (see `change_from_dict`)."""
    data: dict[str, Any] = {}
    if commit.done is not None:
        data["done"] = [str(commit.done[0]), commit.done[1]]
    if commit.memory:
        data["memory"] = commit.memory
    if commit.deliveries:
        data["deliveries"] = [d.to_dict() for d in commit.deliveries]
    if commit.closed:
        data["closed"] = [[str(t), s] for t, s in commit.closed]
    if commit.enqueue:
        data["enqueue"] = [a.to_dict() for a in commit.enqueue]
    if commit.loop_exits:
        data["loop_exits"] = [[str(h), str(e)] for h, e in commit.loop_exits]
    if commit.loop_resets:
        data["loop_resets"] = [str(h) for h in commit.loop_resets]
    return data


def change_from_dict(data: dict[str, Any]) -> Commit:
    """A `Commit` holding only the frontier part `change_to_dict` wrote."""
    done = data.get("done")
    return Commit(
        done=None if done is None else (UUID(done[0]), int(done[1])),
        memory=data.get("memory"),
        deliveries=[Delivery.from_dict(d) for d in data.get("deliveries", ())],
        closed=[(UUID(t), int(s)) for t, s in data.get("closed", ())],
        enqueue=[Activation.from_dict(a) for a in data.get("enqueue", ())],
        loop_exits=[(UUID(h), UUID(e)) for h, e in data.get("loop_exits", ())],
        loop_resets=[UUID(h) for h in data.get("loop_resets", ())],
    )


def changes_after(
    kept: Sequence[tuple[int, Commit]], after: int, version: int
) -> list[Commit] | None:
    """The changes of the commits ``after + 1`` to ``version`` out of ``kept`` ((version,
    change) pairs, oldest first), or None unless every one of them is there."""
    if version == after:
        return []
    out: list[Commit] = []
    for number, change in reversed(kept):
        if number <= after:
            break
        out.append(change)
    out.reverse()
    if len(out) != version - after or (out and kept[-1][0] != version):
        return None
    return out
