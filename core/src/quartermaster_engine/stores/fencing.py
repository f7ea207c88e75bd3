"""The fencing rules every durable store applies, and the errors they raise.

Stores check these inside the transaction (or script) that writes, so a
check and the write it guards cannot be separated by another process. Stores
that check in SQL or Lua word their errors through the functions here, so every
store says the same thing.
"""

from __future__ import annotations

import time
from uuid import UUID

from quartermaster_engine.stores.base import (
    DuplicateCommitError,
    FlowEndedError,
    LeaseHeldError,
    StaleLeaseError,
)
from quartermaster_engine.stores.records import (
    TERMINAL,
    ActivationKey,
    FlowMove,
    FlowRecord,
    FlowStatus,
    Lease,
)


def check_fence(
    flow_id: UUID,
    status: FlowStatus,
    current_epoch: int,
    owner: str | None,
    epoch: int | None,
    *,
    ending: bool = True,
) -> None:
    """Refuse a write made under ``epoch`` unless it is the flow's current lease
    epoch, and (``ending``: commits and status updates) any write to an ended flow."""
    if ending and status.is_terminal:
        raise flow_ended(flow_id, status)
    if epoch is not None and epoch != current_epoch:
        raise stale_lease(flow_id, epoch, current_epoch, owner)


def check_record_fence(record: FlowRecord, epoch: int | None, *, ending: bool = True) -> None:
    """`check_fence` against a `FlowRecord`."""
    if (ending and record.status in TERMINAL) or (
        epoch is not None and epoch != record.lease_epoch
    ):  # (tested here first: this runs once per commit of every store)
        check_fence(
            record.flow_id,
            record.status,
            record.lease_epoch,
            record.lease_owner,
            epoch,
            ending=ending,
        )


def check_move(
    flow_id: UUID, status: FlowStatus, current_epoch: int, owner: str | None, move: FlowMove
) -> None:
    """Refuse a `FlowMove` unless the flow is still held under ``move.epoch`` and
    still has the status the mover read (``move.status``)."""
    if move.epoch != current_epoch:
        raise stale_lease(flow_id, move.epoch, current_epoch, owner)
    if status is not move.status:
        raise StaleLeaseError(
            f"flow {flow_id} is {status.value}, not {move.status.value} as read; it was not moved"
        )


def check_lease_free(flow_id: UUID, lease: Lease | None, now: float, take_over: int | None) -> None:
    """Refuse a new lease while another one is live (unless taking it over)."""
    if lease is None or lease.expires_at <= now:
        return
    if take_over is not None and take_over == lease.epoch:
        return
    raise lease_held(flow_id, lease, now)


def lease_held(flow_id: UUID, lease: Lease, now: float | None = None) -> LeaseHeldError:
    left = lease.expires_at - (time.time() if now is None else now)
    return LeaseHeldError(
        f"flow {flow_id} is being run by {lease.owner} (lease epoch {lease.epoch}, "
        f"{max(left, 0.0):.1f} s left unless renewed)",
        lease,
    )


def stale_lease(flow_id: UUID, epoch: int, current: int, owner: str | None) -> StaleLeaseError:
    return StaleLeaseError(
        f"flow {flow_id}: lease epoch {epoch} is stale; the flow is now at "
        f"epoch {current}, held by {owner or 'nobody'}"
    )


def flow_ended(flow_id: UUID, status: FlowStatus) -> FlowEndedError:
    return FlowEndedError(f"flow {flow_id} is {status.value}; nothing more is written", status)


def duplicate_commit(
    flow_id: UUID, done: ActivationKey, attempt: int | None
) -> DuplicateCommitError:
    tail = "" if attempt is None else f", attempt {attempt}"
    return DuplicateCommitError(
        f"flow {flow_id}: node {done[0]} visit {done[1]}{tail} is not pending; "
        "it was committed already"
    )


def not_waiting(flow_id: UUID, key: ActivationKey) -> DuplicateCommitError:
    return DuplicateCommitError(
        f"flow {flow_id}: node {key[0]} visit {key[1]} is no longer waiting for input; "
        "it was answered already"
    )
