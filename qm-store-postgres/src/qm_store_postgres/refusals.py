"""The errors for the refusals ``qm_commit`` and ``qm_update_flow`` return.

The functions check the fence inside the transaction that writes and answer
NULL when they applied the change, else a short text array (see ``qm_fence``
and ``qm_commit`` in `qm_store_postgres.schema`). The wording comes from core's
`quartermaster_engine.stores.fencing`, so every store says the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from quartermaster_engine.stores.base import FlowNotFoundError, StoreError
from quartermaster_engine.stores.fencing import (
    duplicate_commit,
    flow_ended,
    not_waiting,
    stale_lease,
)
from quartermaster_engine.stores.records import Commit, FlowStatus

NO_FLOW = "0"
ENDED = "-1"
STALE = "-2"
NOT_PENDING = "-3"
NOT_WAITING = "-4"


def refusal(
    flow_id: UUID,
    reply: Sequence[str | None],
    where: str,
    *,
    epoch: int | None = None,
    commit: Commit | None = None,
) -> StoreError:
    """The error for ``reply``; ``where`` names the store, ``epoch`` is the one the
    refused write was made under, ``commit`` the refused commit."""
    code = reply[0]
    if code == NO_FLOW:
        return FlowNotFoundError(f"no flow {flow_id} in {where}")
    if code == ENDED:
        return flow_ended(flow_id, FlowStatus(reply[1]))
    if code == STALE and epoch is not None:
        return stale_lease(flow_id, epoch, int(reply[2] or 0), reply[3])
    if code == NOT_PENDING and commit is not None and commit.done is not None:
        attempt = None if commit.record is None else commit.record.attempt
        return duplicate_commit(flow_id, commit.done, attempt)
    if code == NOT_WAITING and commit is not None and commit.answers is not None:
        return not_waiting(flow_id, commit.answers)
    return StoreError(f"unexpected answer {list(reply)!r} from {where}")
