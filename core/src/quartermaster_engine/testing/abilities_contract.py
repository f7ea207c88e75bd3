"""The store contract's clauses on what the engine asks of any store besides its
data: it is durable behind the typed face, names itself if it says it does, counts
records if it says it does, keeps persistent memory if it has one (optional
abilities: docs/writing-plugins.md)."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from quartermaster_engine._sync import run_sync
from quartermaster_engine.stores.adapter import StoreAdapter
from quartermaster_engine.stores.base import (
    CountsRecords,
    DescribesItself,
    DurableStore,
    KeepsPersistentMemory,
)
from quartermaster_engine.stores.records import Activation, Commit
from quartermaster_engine.testing.calls import call
from quartermaster_engine.testing.contract_base import StoreContractBase, node_record
from quartermaster_engine.testing.graphs import name_id
from quartermaster_engine.types import GraphSpec


class AbilitiesContract(StoreContractBase):
    """Optional abilities declared as protocols, and the typed face."""

    def test_the_store_is_durable_behind_the_typed_face(self, store: Any) -> None:
        assert isinstance(store, DurableStore)
        assert StoreAdapter(store).durable

    def test_a_described_store_names_itself(self, store: Any) -> None:
        name = StoreAdapter(store).describe()
        if isinstance(store, DescribesItself):
            assert name == store.describe()
            assert name
        else:
            assert name == type(store).__name__

    def test_counted_records_match_the_records(self, store: Any, graph: GraphSpec) -> None:
        flow = self.new_flow(store, graph)
        start = Activation(name_id("Start"), 1)
        call(store, "commit", flow.flow_id, Commit(enqueue=[start]))
        call(
            store,
            "commit",
            flow.flow_id,
            Commit((name_id("Start"), 1), node_record(name_id("Start"))),
        )
        counts = run_sync(StoreAdapter(store).record_counts([flow.flow_id]))
        if isinstance(store, CountsRecords):
            assert counts == {flow.flow_id: {"finished": 1}}
        else:
            assert counts is None

    def test_persistent_memory_of_the_store_keeps_values(self, store: Any) -> None:
        if not isinstance(store, KeepsPersistentMemory):
            pytest.skip("the store keeps no persistent memory (the engine keeps one)")
        memory = store.persistent_memory()
        agent = uuid4()
        call(memory, "write", agent, "colour", "teal")
        assert call(memory, "read", agent, "colour") == "teal"
