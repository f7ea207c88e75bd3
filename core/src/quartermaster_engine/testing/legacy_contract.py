"""The store contract's clauses kept from 0.1.5's store protocol: node executions
(latest per node), memory, message histories, clearing a flow."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from quartermaster_engine.context.node_execution import NodeStatus
from quartermaster_engine.testing.calls import call
from quartermaster_engine.testing.contract_base import StoreContractBase, node_record
from quartermaster_engine.types import GraphSpec, Message, MessageRole


class LegacyStoreContract(StoreContractBase):
    """0.1.5's store methods, as the engine still serves them."""

    def test_node_executions_latest_per_node(self, store: Any) -> None:
        flow, a, b = uuid4(), uuid4(), uuid4()
        assert call(store, "get_node_execution", flow, a) is None
        assert call(store, "get_all_node_executions", flow) == {}
        first = node_record(a, 1, result="one", started=1.0, finished=2.0)
        second = node_record(a, 2, result="two", output_data={"k": [1, 2]})
        other = node_record(b, 1, status=NodeStatus.FAILED, error="boom")
        for rec in (first, second, other):
            call(store, "save_node_execution", flow, rec.node_id, rec)
        assert call(store, "get_node_execution", flow, a) == second
        assert call(store, "get_all_node_executions", flow) == {a: second, b: other}

    def test_memory_set_get_delete(self, store: Any) -> None:
        flow = uuid4()
        assert call(store, "get_memory", flow, "missing") is None
        values = {"s": "text é", "i": 3, "f": 1.5, "b": True, "n": None, "l": [1, {"x": "y"}]}
        for key, value in values.items():
            call(store, "save_memory", flow, key, value)
        assert call(store, "get_memory", flow, "l") == [1, {"x": "y"}]
        assert call(store, "get_all_memory", flow) == values
        call(store, "delete_memory", flow, "s")
        call(store, "delete_memory", flow, "never-set")
        assert "s" not in call(store, "get_all_memory", flow)

    def test_messages_save_get_append(self, store: Any) -> None:
        flow, node = uuid4(), uuid4()
        assert call(store, "get_messages", flow, node) == []
        history = [Message(MessageRole.SYSTEM, "sys"), Message(MessageRole.USER, "hi")]
        call(store, "save_messages", flow, node, history)
        call(store, "append_message", flow, node, Message(MessageRole.ASSISTANT, "hello"))
        got = call(store, "get_messages", flow, node)
        assert [(m.role, m.content) for m in got] == [
            (MessageRole.SYSTEM, "sys"),
            (MessageRole.USER, "hi"),
            (MessageRole.ASSISTANT, "hello"),
        ]

    def test_clear_flow_removes_everything_of_that_flow_only(
        self, store: Any, graph: GraphSpec
    ) -> None:
        kept = self.new_flow(store, graph)
        gone = self.new_flow(store, graph)
        for record in (kept, gone):
            call(store, "save_memory", record.flow_id, "k", "v")
            rec = node_record(uuid4())
            call(store, "save_node_execution", record.flow_id, rec.node_id, rec)
        call(store, "clear_flow", gone.flow_id)
        assert call(store, "get_all_memory", gone.flow_id) == {}
        assert call(store, "get_all_node_executions", gone.flow_id) == {}
        assert call(store, "get_all_memory", kept.flow_id) == {"k": "v"}
        assert len(call(store, "get_all_node_executions", kept.flow_id)) == 1
