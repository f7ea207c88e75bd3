"""The store contract's fencing and event-log clauses, as pytest tests.

`StoreContract` includes them; they need its ``store``, ``make_store`` and
``graph`` fixtures and its `new_flow` helper. Every refusal must leave the
store exactly as it was.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus
from quartermaster_engine.events import FlowEvent, FlowStarted, NodeFinished, NodeStarted
from quartermaster_engine.nodes import SimpleNodeRegistry
from quartermaster_engine.runner.flow_runner import FlowRunner
from quartermaster_engine.stores.base import (
    DuplicateCommitError,
    LeaseHeldError,
    StaleLeaseError,
)
from quartermaster_engine.stores.records import (
    Activation,
    Commit,
    FlowStatus,
    FlowUpdate,
)
from quartermaster_engine.testing.calls import call, close_store
from quartermaster_engine.testing.contract_base import StoreContractBase
from quartermaster_engine.testing.graphs import chain_graph, name_id
from quartermaster_engine.types import GraphSpec


def _state(store: Any, flow_id: Any) -> tuple[Any, ...]:
    """What a refused write must leave unchanged."""
    snap = call(store, "load_flow", flow_id)
    flow = snap.flow
    return (
        flow.status,
        flow.version,
        flow.lease_epoch,
        flow.event_seq,
        [(r.node_id, r.visit, r.attempt, r.status) for r in snap.records],
        sorted((a.key, a.attempt, a.waiting) for a in snap.pending),
        sorted(snap.memory.items()),
        [e.seq for e in call(store, "read_events", flow_id)],
    )


def _finished(node: str, attempt: int = 1) -> NodeExecution:
    return NodeExecution(name_id(node), NodeStatus.FINISHED, visit=1, attempt=attempt)


class FencingContract(StoreContractBase):
    """Leases, fenced commits, duplicate commits and the event log."""

    def test_a_lease_is_exclusive_until_it_runs_out_or_is_taken_over(
        self, store: Any, graph: GraphSpec
    ) -> None:
        fid = self.new_flow(store, graph).flow_id
        first = call(store, "acquire_lease", fid, "host:1:a", 30.0)
        assert (first.owner, first.epoch) == ("host:1:a", 1)
        assert first.expires_at == pytest.approx(time.time() + 30.0, abs=2.0)
        with pytest.raises(LeaseHeldError) as held:
            call(store, "acquire_lease", fid, "host:2:b", 30.0)
        assert held.value.lease.owner == "host:1:a"
        assert held.value.lease.epoch == 1
        assert f"flow {fid} is being run by host:1:a (lease epoch 1" in str(held.value)
        taken = call(store, "acquire_lease", fid, "host:2:b", 30.0, take_over=1)
        assert (taken.owner, taken.epoch) == ("host:2:b", 2)
        record = call(store, "get_flow", fid)
        assert (record.lease_owner, record.lease_epoch) == ("host:2:b", 2)
        call(store, "renew_lease", fid, 2, 0.01)
        time.sleep(0.05)
        third = call(store, "acquire_lease", fid, "host:3:c", 30.0)
        assert third.epoch == 3

    def test_renew_and_release_only_touch_the_current_lease(
        self, store: Any, graph: GraphSpec
    ) -> None:
        fid = self.new_flow(store, graph).flow_id
        call(store, "acquire_lease", fid, "host:1:a", 30.0)
        call(store, "acquire_lease", fid, "host:2:b", 30.0, take_over=1)
        with pytest.raises(StaleLeaseError) as stale:
            call(store, "renew_lease", fid, 1, 30.0)
        assert str(stale.value) == (
            f"flow {fid}: lease epoch 1 is stale; the flow is now at epoch 2, held by host:2:b"
        )
        call(store, "release_lease", fid, 1)  # stale: nothing happens
        assert call(store, "get_flow", fid).lease_owner == "host:2:b"
        renewed = call(store, "renew_lease", fid, 2, 60.0)
        assert renewed.expires_at == pytest.approx(time.time() + 60.0, abs=2.0)
        call(store, "release_lease", fid, 2)
        record = call(store, "get_flow", fid)
        assert record.lease() is None
        assert record.lease_epoch == 2
        assert call(store, "acquire_lease", fid, "host:3:c", 30.0).epoch == 3

    def test_a_commit_under_a_stale_epoch_changes_nothing(
        self, store: Any, graph: GraphSpec
    ) -> None:
        fid = self.new_flow(store, graph).flow_id
        call(store, "acquire_lease", fid, "host:1:a", 30.0)
        start = Activation(name_id("Start"), 1)
        call(store, "commit", fid, Commit(enqueue=[start], epoch=1))
        call(store, "acquire_lease", fid, "host:2:b", 30.0, take_over=1)
        before = _state(store, fid)
        late = Commit(
            done=start.key,
            record=_finished("Start"),
            memory={"k": 1},
            enqueue=[Activation(name_id("n0"), 1)],
            epoch=1,
            events=[NodeFinished(flow_id=fid, seq=1)],
        )
        with pytest.raises(StaleLeaseError):
            call(store, "commit", fid, late)
        assert _state(store, fid) == before
        late.epoch = 2
        call(store, "commit", fid, late)
        assert call(store, "get_flow", fid).version == before[1] + 1

    def test_a_duplicate_commit_changes_nothing(self, store: Any, graph: GraphSpec) -> None:
        fid = self.new_flow(store, graph).flow_id
        start = Activation(name_id("Start"), 1)
        call(store, "commit", fid, Commit(enqueue=[start]))
        done = Commit(done=start.key, record=_finished("Start"), memory={"k": 1})
        call(store, "commit", fid, done)
        before = _state(store, fid)
        again = Commit(done=start.key, record=_finished("Start"), memory={"k": 2})
        with pytest.raises(DuplicateCommitError) as dup:
            call(store, "commit", fid, again)
        assert str(dup.value) == (
            f"flow {fid}: node {start.node_id} visit 1, attempt 1 is not pending; "
            "it was committed already"
        )
        assert _state(store, fid) == before

    def test_a_commit_of_a_superseded_attempt_is_a_duplicate(
        self, store: Any, graph: GraphSpec
    ) -> None:
        fid = self.new_flow(store, graph).flow_id
        second = Activation(name_id("n0"), 1, 2)
        call(store, "commit", fid, Commit(enqueue=[second]))
        before = _state(store, fid)
        with pytest.raises(DuplicateCommitError):
            call(store, "commit", fid, Commit(done=second.key, record=_finished("n0", 1)))
        assert _state(store, fid) == before
        call(store, "commit", fid, Commit(done=second.key, record=_finished("n0", 2)))
        assert call(store, "load_flow", fid).pending == []

    def test_an_answer_to_a_node_no_longer_waiting_changes_nothing(
        self, store: Any, graph: GraphSpec
    ) -> None:
        fid = self.new_flow(store, graph).flow_id
        ask = Activation(name_id("n1"), 1, waiting=True, prompt="ok?")
        call(store, "commit", fid, Commit(enqueue=[ask]))
        answered = Activation(name_id("n1"), 1, user_input="yes")
        call(store, "commit", fid, Commit(enqueue=[answered], answers=ask.key))
        before = _state(store, fid)
        twice = Activation(name_id("n1"), 1, user_input="no")
        with pytest.raises(DuplicateCommitError) as dup:
            call(store, "commit", fid, Commit(enqueue=[twice], answers=ask.key))
        assert "is no longer waiting for input; it was answered already" in str(dup.value)
        assert _state(store, fid) == before
        (pending,) = call(store, "load_flow", fid).pending
        assert pending.user_input == "yes"

    def test_an_ended_flow_takes_no_commit_and_no_fenced_update(
        self, store: Any, graph: GraphSpec
    ) -> None:
        fid = self.new_flow(store, graph).flow_id
        call(store, "acquire_lease", fid, "host:1:a", 30.0)
        call(store, "update_flow", fid, FlowUpdate(FlowStatus.STOPPED, time.time()))
        before = _state(store, fid)
        with pytest.raises(StaleLeaseError) as ended:
            call(store, "commit", fid, Commit(memory={"k": 1}, epoch=1))
        assert str(ended.value) == f"flow {fid} is stopped; nothing more is written"
        done = FlowUpdate(FlowStatus.COMPLETED, time.time(), epoch=1)
        with pytest.raises(StaleLeaseError):
            call(store, "update_flow", fid, done)
        assert _state(store, fid) == before

    def test_events_are_logged_by_commits_and_updates_and_read_back_in_order(
        self, make_store: Any, graph: GraphSpec
    ) -> None:
        store = make_store()
        try:
            fid = self.new_flow(store, graph).flow_id
            events: list[FlowEvent] = [
                FlowStarted(flow_id=fid, seq=1, ts=1.5, input="hi", graph_name="g"),
                NodeStarted(flow_id=fid, seq=2, ts=2.5, node_id=name_id("Start")),
            ]
            call(store, "commit", fid, Commit(enqueue=[Activation(name_id("Start"), 1)]))
            call(store, "commit", fid, Commit(events=events))
            finished = NodeFinished(flow_id=fid, seq=3, ts=3.5, result="r")
            call(
                store,
                "update_flow",
                fid,
                FlowUpdate(FlowStatus.PAUSED, time.time(), event_seq=3, events=[finished]),
            )
            record = call(store, "get_flow", fid)
            assert (record.event_seq, record.version) == (3, 2)
        finally:
            close_store(store)
        other = make_store()  # another process reads the log
        try:
            got = call(other, "read_events", fid)
            assert [e.to_dict() for e in got] == [e.to_dict() for e in [*events, finished]]
            assert [e.seq for e in call(other, "read_events", fid, 1)] == [2, 3]
            assert [e.seq for e in call(other, "read_events", fid, 1, 1)] == [2]
            assert call(other, "read_events", fid, 3) == []
            assert call(other, "read_events", name_id("no such flow")) == []
        finally:
            close_store(other)

    def test_a_run_logs_every_event_it_emits_but_tokens(self, make_store: Any) -> None:
        def stream(ctx: Any) -> str:
            ctx.emit_token("t")
            return "ok"

        heard: list[FlowEvent] = []
        store = make_store()
        try:
            runner = FlowRunner(
                chain_graph(3, "stream"),
                SimpleNodeRegistry({"stream": stream}),
                store=store,
                on_event=heard.append,
            )
            result = runner.run("x")
            logged = call(store, "read_events", result.flow_id)
        finally:
            close_store(store)
        live = [e.to_dict() for e in heard if e.type != "TokenGenerated"]
        assert [e.to_dict() for e in logged] == live
        assert [e.seq for e in logged] == list(range(1, 9))  # started, 3 nodes x 2, finished
        assert logged[-1].type == "FlowFinished"
        assert result.status is FlowStatus.COMPLETED
        record = call(make_store(), "get_flow", result.flow_id)
        assert record.lease() is None  # the driver let go when the flow ended
