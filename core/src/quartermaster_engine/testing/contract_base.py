"""What the parts of `StoreContract` share: its fixtures (``make_store``, ``store``,
``graph``), `new_flow`, and the records and executor its tests use."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest

from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus
from quartermaster_engine.nodes import NodeResult
from quartermaster_engine.stores.records import FlowRecord
from quartermaster_engine.testing.calls import call, close_store
from quartermaster_engine.testing.graphs import chain_graph
from quartermaster_engine.types import GraphSpec


def echo_node(ctx: ExecutionContext) -> NodeResult:
    """An executor answering ``name(input)``, so outputs show the path taken."""
    return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")


def node_record(node: UUID, visit: int = 1, **fields: Any) -> NodeExecution:
    """A node's record, FINISHED unless ``status`` says otherwise."""
    fields.setdefault("status", NodeStatus.FINISHED)
    status = fields.pop("status")
    return NodeExecution(node, status, visit=visit, **fields)


class StoreContractBase:
    """The fixtures and helpers of every part of `StoreContract`."""

    @pytest.fixture
    def make_store(self) -> Callable[[], Any]:
        raise NotImplementedError("provide a make_store fixture returning a store opener")

    @pytest.fixture
    def store(self, make_store: Callable[[], Any]) -> Iterator[Any]:
        store = make_store()
        yield store
        close_store(store)

    @pytest.fixture
    def graph(self) -> GraphSpec:
        return chain_graph(4)

    def new_flow(self, store: Any, graph: GraphSpec, **fields: Any) -> FlowRecord:
        """Create a RUNNING flow of ``graph`` in ``store`` (``fields`` override the record's)."""
        now = time.time()
        record = FlowRecord(
            flow_id=fields.pop("flow_id", uuid4()),
            graph=graph,
            input=fields.pop("input", "hello"),
            created_at=fields.pop("created_at", now),
            updated_at=fields.pop("updated_at", now),
            **fields,
        )
        call(store, "create_flow", record)
        return record
