"""The store contract's clauses on flow records: creating, reading, updating (an ended
flow drops its queue and joins), listing, deleting and pruning."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest

from quartermaster_engine.stores.base import FlowExistsError
from quartermaster_engine.stores.records import Activation, Commit, Delivery, FlowStatus, FlowUpdate
from quartermaster_engine.testing.calls import call
from quartermaster_engine.testing.contract_base import StoreContractBase
from quartermaster_engine.testing.graphs import name_id
from quartermaster_engine.types import GraphSpec


class FlowRecordsContract(StoreContractBase):
    """Flow records, listing and retention."""

    def test_create_and_get_flow(self, store: Any, graph: GraphSpec) -> None:
        parent = uuid4()
        record = self.new_flow(store, graph, input="quest ✓", parent_flow_id=parent)
        got = call(store, "get_flow", record.flow_id)
        assert got.flow_id == record.flow_id
        assert got.graph == graph
        assert got.input == "quest ✓"
        assert got.status is FlowStatus.RUNNING
        assert got.parent_flow_id == parent
        assert got.created_at == pytest.approx(record.created_at, abs=1e-3)
        assert call(store, "get_flow", uuid4()) is None

    def test_create_flow_twice_raises(self, store: Any, graph: GraphSpec) -> None:
        record = self.new_flow(store, graph)
        with pytest.raises(FlowExistsError):
            call(store, "create_flow", record)

    def test_update_flow_and_terminal_status_drops_queue_and_joins(
        self, store: Any, graph: GraphSpec
    ) -> None:
        record = self.new_flow(store, graph)
        act = Activation(name_id("n0"), 1)
        commit = Commit(
            enqueue=[act],
            deliveries=[Delivery(name_id("n1"), 1, uuid4(), None)],
            loop_exits=[(name_id("n0"), uuid4())],
        )
        call(store, "commit", record.flow_id, commit)
        call(
            store,
            "update_flow",
            record.flow_id,
            FlowUpdate(status=FlowStatus.PAUSED, updated_at=time.time(), event_seq=7),
        )
        paused = call(store, "load_flow", record.flow_id)
        assert paused.flow.status is FlowStatus.PAUSED
        assert paused.flow.event_seq == 7
        assert [a.key for a in paused.pending] == [act.key]
        assert len(paused.deliveries) == 1
        assert len(paused.loop_exits) == 1
        call(
            store,
            "update_flow",
            record.flow_id,
            FlowUpdate(
                status=FlowStatus.COMPLETED,
                updated_at=time.time(),
                final_output="done",
                event_seq=9,
            ),
        )
        ended = call(store, "load_flow", record.flow_id)
        assert ended.flow.status is FlowStatus.COMPLETED
        assert ended.flow.final_output == "done"
        assert (ended.pending, ended.deliveries, ended.loop_exits) == ([], [], [])

    def test_list_delete_and_prune(self, store: Any, graph: GraphSpec) -> None:
        old = time.time() - 3600
        done_old = self.new_flow(store, graph, created_at=old, updated_at=old)
        call(
            store,
            "update_flow",
            done_old.flow_id,
            FlowUpdate(status=FlowStatus.COMPLETED, updated_at=old),
        )
        paused_old = self.new_flow(store, graph, created_at=old, updated_at=old)
        call(
            store,
            "update_flow",
            paused_old.flow_id,
            FlowUpdate(status=FlowStatus.PAUSED, updated_at=old + 1),
        )
        recent = self.new_flow(store, graph)
        listed = call(store, "list_flows")
        assert [r.flow_id for r in listed] == [
            recent.flow_id,
            paused_old.flow_id,
            done_old.flow_id,
        ]
        assert [r.flow_id for r in call(store, "list_flows", status=FlowStatus.PAUSED)] == [
            paused_old.flow_id
        ]
        assert len(call(store, "list_flows", limit=2)) == 2
        # Only ended flows older than the cut-off go; a paused flow waits for its person.
        assert call(store, "prune", timedelta(minutes=30)) == 1
        assert call(store, "get_flow", done_old.flow_id) is None
        assert call(store, "get_flow", paused_old.flow_id) is not None
        assert call(store, "delete_flow", recent.flow_id) is True
        assert call(store, "delete_flow", recent.flow_id) is False
        assert call(store, "load_flow", recent.flow_id) is None
