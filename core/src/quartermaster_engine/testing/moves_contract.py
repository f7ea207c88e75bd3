"""Conformance of the optional `MovesFlows` ability (inherited by `StoreContract`):
``move_flow`` replaces a flow's graph and logs events only under the flow's current
lease epoch and the status the mover read; a refusal changes nothing. Stores
without the ability skip these tests."""

from __future__ import annotations

import time
from typing import Any
from uuid import uuid4

import pytest

from quartermaster_engine.events import FlowMigrated
from quartermaster_engine.stores.base import FlowNotFoundError, MovesFlows, StaleLeaseError
from quartermaster_engine.stores.records import FlowMove, FlowStatus
from quartermaster_engine.testing.calls import call, close_store
from quartermaster_engine.testing.contract_base import StoreContractBase
from quartermaster_engine.testing.graphs import chain_graph
from quartermaster_engine.types import GraphSpec


class MovesContract(StoreContractBase):
    """Tests of `MovesFlows`; ``store``, ``make_store`` and ``graph`` are `StoreContract`'s."""

    def test_a_flow_moves_to_another_graph_only_under_its_fence(
        self, store: Any, make_store: Any, graph: GraphSpec
    ) -> None:
        if not isinstance(store, MovesFlows):
            pytest.skip(f"{type(store).__name__} cannot move flows (an optional ability)")
        fid = self.new_flow(store, graph, status=FlowStatus.PAUSED).flow_id
        epoch = call(store, "acquire_lease", fid, "host:1:a", 30.0).epoch
        other = chain_graph(5)
        event = FlowMigrated(flow_id=fid, seq=1, ts=time.time(), graph_name="v2")

        def move(epoch: int, status: FlowStatus) -> FlowMove:
            return FlowMove(other, status, epoch, time.time(), [event])

        with pytest.raises(StaleLeaseError) as stale:
            call(store, "move_flow", fid, move(epoch + 1, FlowStatus.PAUSED))
        assert str(stale.value) == (
            f"flow {fid}: lease epoch {epoch + 1} is stale; the flow is now at epoch {epoch}, "
            "held by host:1:a"
        )
        with pytest.raises(StaleLeaseError) as changed:
            call(store, "move_flow", fid, move(epoch, FlowStatus.FAILED))
        assert str(changed.value) == f"flow {fid} is paused, not failed as read; it was not moved"
        assert call(store, "get_flow", fid).graph == graph
        assert call(store, "read_events", fid) == []
        with pytest.raises(FlowNotFoundError):
            call(store, "move_flow", uuid4(), move(epoch, FlowStatus.PAUSED))

        call(store, "move_flow", fid, move(epoch, FlowStatus.PAUSED))
        fresh = make_store()
        try:
            record = call(fresh, "get_flow", fid)
            assert (record.graph, record.status, record.event_seq) == (other, FlowStatus.PAUSED, 1)
            assert call(fresh, "load_flow", fid).flow.graph == other
            assert [e.type for e in call(fresh, "read_events", fid)] == ["FlowMigrated"]
        finally:
            close_store(fresh)
