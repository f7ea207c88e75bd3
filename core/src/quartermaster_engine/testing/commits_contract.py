"""The store contract's clauses on commits: a commit applies all its parts (record,
memory, deliveries, closed joins, queue, loop marks) and `load_flow` returns them;
deliveries count once per edge, records keep commit order, a retry replaces its
activation, and a commit touches its own flow only."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus
from quartermaster_engine.stores.records import Activation, Commit, Delivery
from quartermaster_engine.testing.calls import call
from quartermaster_engine.testing.contract_base import StoreContractBase, node_record
from quartermaster_engine.testing.graphs import name_id
from quartermaster_engine.types import GraphSpec, Message, MessageRole


class CommitsContract(StoreContractBase):
    """Commits and what `load_flow` reads back."""

    def test_commit_applies_every_part_and_load_flow_returns_it(
        self, store: Any, graph: GraphSpec
    ) -> None:
        record = self.new_flow(store, graph)
        fid = record.flow_id
        start = Activation(name_id("Start"), 1)
        call(store, "commit", fid, Commit(enqueue=[start]))
        loaded = call(store, "load_flow", fid)
        assert [a.key for a in loaded.pending] == [start.key]

        rec = NodeExecution(
            name_id("Start"),
            NodeStatus.FINISHED,
            visit=1,
            attempt=1,
            result="hello",
            output_data={"n": 1, "nested": {"a": [1, "b"]}},
            started=100.25,
            finished=100.5,
            messages=(Message(MessageRole.USER, "hello"),),
            user_input=None,
        )
        edge = uuid4()
        nxt = Activation(
            name_id("n0"),
            1,
            1,
            ((name_id("Start"), 1),),
            not_before=123.5,
            waiting=True,
            prompt="Approve?",
            options=["yes", "no"],
            user_input="maybe",
        )
        header = name_id("n0")
        exit_edge = uuid4()
        commit = Commit(
            (name_id("Start"), 1),
            rec,
            {"topic": "billing", "count": 2},
            deliveries=[
                Delivery(name_id("n1"), 1, edge, (name_id("Start"), 1)),
                Delivery(name_id("n1"), 2, uuid4(), None),
            ],
            closed=[(name_id("n1"), 2)],
            enqueue=[nxt],
            loop_exits=[(header, exit_edge)],
        )
        call(store, "commit", fid, commit)
        snap = call(store, "load_flow", fid)
        assert snap.memory == {"topic": "billing", "count": 2}
        assert snap.records == [rec]
        assert snap.records[0].messages == (Message(MessageRole.USER, "hello"),)
        assert [a.to_dict() for a in snap.pending] == [nxt.to_dict()]
        # Slot 2 was closed in the same commit: only slot 1's delivery stays.
        assert snap.deliveries == [Delivery(name_id("n1"), 1, edge, (name_id("Start"), 1))]
        assert snap.loop_exits == [(header, exit_edge)]

        call(store, "commit", fid, Commit(loop_resets=[header], closed=[(name_id("n1"), 1)]))
        snap = call(store, "load_flow", fid)
        assert (snap.deliveries, snap.loop_exits) == ([], [])

    def test_a_repeated_delivery_of_an_edge_counts_once(self, store: Any, graph: GraphSpec) -> None:
        record = self.new_flow(store, graph)
        target, first, second = name_id("n1"), uuid4(), uuid4()
        one = Delivery(target, 1, first, (name_id("n0"), 1))
        call(store, "commit", record.flow_id, Commit(deliveries=[one, one]))
        call(
            store,
            "commit",
            record.flow_id,
            Commit(deliveries=[one, Delivery(target, 1, second, None)]),
        )
        snap = call(store, "load_flow", record.flow_id)
        assert sorted(snap.deliveries, key=lambda d: str(d.edge)) == sorted(
            [one, Delivery(target, 1, second, None)], key=lambda d: str(d.edge)
        )

    def test_records_keep_commit_order_and_every_visit(self, store: Any, graph: GraphSpec) -> None:
        record = self.new_flow(store, graph)
        node = name_id("n0")
        recs = [
            node_record(node, 1, attempt=1, status=NodeStatus.FAILED, error="first"),
            node_record(node, 1, attempt=2, result="ok"),
            node_record(node, 2, result="again"),
        ]
        for rec in recs:
            call(store, "commit", record.flow_id, Commit(record=rec))
        snap = call(store, "load_flow", record.flow_id)
        assert [(r.visit, r.attempt, r.status) for r in snap.records] == [
            (1, 1, NodeStatus.FAILED),
            (1, 2, NodeStatus.FINISHED),
            (2, 1, NodeStatus.FINISHED),
        ]
        assert call(store, "get_node_execution", record.flow_id, node) == recs[2]

    def test_a_retry_replaces_the_pending_activation(self, store: Any, graph: GraphSpec) -> None:
        record = self.new_flow(store, graph)
        first = Activation(name_id("n0"), 1, 1)
        call(store, "commit", record.flow_id, Commit(enqueue=[first]))
        retry = Activation(name_id("n0"), 1, 2, not_before=50.0)
        failed = node_record(name_id("n0"), 1, status=NodeStatus.FAILED, error="x")
        call(store, "commit", record.flow_id, Commit(first.key, failed, enqueue=[retry]))
        snap = call(store, "load_flow", record.flow_id)
        assert [(a.key, a.attempt, a.not_before) for a in snap.pending] == [(first.key, 2, 50.0)]

    def test_commits_of_one_flow_do_not_touch_another(self, store: Any, graph: GraphSpec) -> None:
        one = self.new_flow(store, graph)
        two = self.new_flow(store, graph)
        call(store, "commit", one.flow_id, Commit(memory={"k": 1}, record=node_record(uuid4())))
        snap = call(store, "load_flow", two.flow_id)
        assert (snap.memory, snap.records) == ({}, [])
