"""The store contract suite: what every store must do, as pytest tests.

Subclass `StoreContract` and provide a ``make_store`` fixture: a zero-argument
callable that opens the store under test. Every call must open the same data
(two calls stand in for two processes sharing it). Stores may implement their
methods with ``def`` or ``async def``; the suite calls both alike.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from quartermaster_engine._sync import run_sync
from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus
from quartermaster_engine.dispatchers.async_dispatcher import AsyncDispatcher
from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry
from quartermaster_engine.runner.flow_runner import FlowRunner
from quartermaster_engine.stores.adapter import StoreAdapter
from quartermaster_engine.stores.base import (
    CountsRecords,
    DescribesItself,
    DurableStore,
    FlowExistsError,
    KeepsPersistentMemory,
)
from quartermaster_engine.stores.records import (
    Activation,
    Commit,
    Delivery,
    FlowRecord,
    FlowStatus,
    FlowUpdate,
)
from quartermaster_engine.testing.calls import call, close_store
from quartermaster_engine.testing.counts_contract import CountsContract
from quartermaster_engine.testing.fencing_contract import FencingContract
from quartermaster_engine.testing.graphs import build_graph, chain_graph, name_id
from quartermaster_engine.testing.live_contract import LiveChannelContract
from quartermaster_engine.testing.moves_contract import MovesContract
from quartermaster_engine.testing.slots_contract import SlotsContract
from quartermaster_engine.types import GraphSpec, Message, MessageRole


def _echo(ctx: ExecutionContext) -> NodeResult:
    return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")


def _record(node: UUID, visit: int = 1, **fields: Any) -> NodeExecution:
    fields.setdefault("status", NodeStatus.FINISHED)
    status = fields.pop("status")
    return NodeExecution(node, status, visit=visit, **fields)


class StoreContract(
    CountsContract, FencingContract, LiveChannelContract, MovesContract, SlotsContract
):
    """Inherit this in a ``Test...`` class and provide ``make_store``."""

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

    # -- optional abilities (declared protocols, see docs/writing-plugins.md) -----

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
            store, "commit", flow.flow_id, Commit((name_id("Start"), 1), _record(name_id("Start")))
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

    # -- 0.1.5 contract ---------------------------------------------------------

    def test_node_executions_latest_per_node(self, store: Any) -> None:
        flow, a, b = uuid4(), uuid4(), uuid4()
        assert call(store, "get_node_execution", flow, a) is None
        assert call(store, "get_all_node_executions", flow) == {}
        first = _record(a, 1, result="one", started=1.0, finished=2.0)
        second = _record(a, 2, result="two", output_data={"k": [1, 2]})
        other = _record(b, 1, status=NodeStatus.FAILED, error="boom")
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
            rec = _record(uuid4())
            call(store, "save_node_execution", record.flow_id, rec.node_id, rec)
        call(store, "clear_flow", gone.flow_id)
        assert call(store, "get_all_memory", gone.flow_id) == {}
        assert call(store, "get_all_node_executions", gone.flow_id) == {}
        assert call(store, "get_all_memory", kept.flow_id) == {"k": "v"}
        assert len(call(store, "get_all_node_executions", kept.flow_id)) == 1

    # -- flow records -------------------------------------------------------------

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

    # -- commits ---------------------------------------------------------------------

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
            _record(node, 1, attempt=1, status=NodeStatus.FAILED, error="first"),
            _record(node, 1, attempt=2, result="ok"),
            _record(node, 2, result="again"),
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
        failed = _record(name_id("n0"), 1, status=NodeStatus.FAILED, error="x")
        call(store, "commit", record.flow_id, Commit(first.key, failed, enqueue=[retry]))
        snap = call(store, "load_flow", record.flow_id)
        assert [(a.key, a.attempt, a.not_before) for a in snap.pending] == [(first.key, 2, 50.0)]

    def test_commits_of_one_flow_do_not_touch_another(self, store: Any, graph: GraphSpec) -> None:
        one = self.new_flow(store, graph)
        two = self.new_flow(store, graph)
        call(store, "commit", one.flow_id, Commit(memory={"k": 1}, record=_record(uuid4())))
        snap = call(store, "load_flow", two.flow_id)
        assert (snap.memory, snap.records) == ({}, [])

    def test_get_messages_returns_the_history_a_flow_committed(self, make_store: Any) -> None:
        trace: list[str] = []

        def echo(ctx: ExecutionContext) -> NodeResult:
            trace.append(ctx.current_node.name)
            return _echo(ctx)

        registry = SimpleNodeRegistry({"echo": echo})
        graph = build_graph(
            {
                "Start": "Start1",
                "A": {"type": "echo", "thought_type": "ContinueThought1"},
                "B": {"type": "echo", "thought_type": "ContinueThought1"},
            },
            [("Start", "A"), ("A", "B")],
        )
        store = make_store()
        result = FlowRunner(graph, registry, store=store).run("hi")
        close_store(store)
        reopened = make_store()
        try:
            history = call(reopened, "get_messages", result.flow_id, name_id("B"))
        finally:
            close_store(reopened)
        assert [(m.role, m.content) for m in history] == [
            (MessageRole.USER, "hi"),
            (MessageRole.ASSISTANT, "A(hi)"),
            (MessageRole.ASSISTANT, "B(A(hi))"),
        ]

    # -- listing and retention -------------------------------------------------------------

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

    # -- the store under the runner ----------------------------------------------------------

    def test_runner_chain_diamond_decision_and_loop(self, make_store: Any) -> None:
        def pick(ctx: ExecutionContext) -> NodeResult:
            n = ctx.memory.get("n", 0) + 1
            return NodeResult(
                output_text=str(n),
                picked_node="again" if n < 3 else "done",
                data={"memory_updates": {"n": n}},
            )

        registry = SimpleNodeRegistry({"echo": _echo, "pick": pick})
        graph = build_graph(
            {
                "Start": "Start1",
                "A": "echo",
                "B": "echo",
                "J": {"type": "echo", "traverse_in": "AwaitAll"},
                "Loop": {"type": "pick", "traverse_out": "SpawnPickedNode"},
                "End": "End1",
            },
            [
                ("Start", "A"),
                ("Start", "B"),
                ("A", "J"),
                ("B", "J"),
                ("J", "Loop"),
                ("Loop", "J", "again"),
                ("Loop", "End", "done"),
            ],
        )
        store = make_store()
        try:
            runner = FlowRunner(graph, registry, store=store)
            result = runner.run("in")
            assert result.status is FlowStatus.COMPLETED
            assert result.final_output == "3"
            snap = call(store, "load_flow", result.flow_id)
            visits = [(r.node_id, r.visit) for r in snap.records]
            assert visits.count((name_id("J"), 1)) == 1
            assert [v for n, v in visits if n == name_id("Loop")] == [1, 2, 3]
            assert snap.memory == {"n": 3}
            assert snap.pending == []
            assert snap.flow.status is FlowStatus.COMPLETED
        finally:
            close_store(store)

    def test_pause_in_one_store_instance_resume_in_another(self, make_store: Any) -> None:
        def ask(ctx: ExecutionContext) -> NodeResult:
            if ctx.user_input is None:
                return NodeResult(wait_for_user=True, user_prompt="Approve?", user_options=["y"])
            return NodeResult(output_text=f"answer={ctx.user_input}")

        registry = SimpleNodeRegistry({"echo": _echo, "ask": ask})
        graph = build_graph(
            {"Start": "Start1", "Q": "ask", "After": "echo", "End": "End1"},
            [("Start", "Q"), ("Q", "After"), ("After", "End")],
        )
        first = make_store()
        try:
            paused = FlowRunner(graph, registry, store=first).run("in")
        finally:
            close_store(first)
        assert paused.status is FlowStatus.PAUSED
        second = make_store()
        try:
            runner = FlowRunner(chain_graph(3), registry, store=second)
            waiting = runner.get_result(paused.flow_id)
            assert [(w.node_name, w.prompt, w.options) for w in waiting.waiting] == [
                ("Q", "Approve?", ["y"])
            ]
            done = runner.resume(paused.flow_id, "yes")
        finally:
            close_store(second)
        assert done.status is FlowStatus.COMPLETED
        assert done.final_output == "After(answer=yes)"

    def test_interrupted_run_recovers_without_rerunning_committed_nodes(
        self, make_store: Any
    ) -> None:
        ran: list[str] = []
        release = asyncio.Event()

        async def work(ctx: ExecutionContext) -> NodeResult:
            ran.append(ctx.current_node.name)
            if ctx.current_node.name == "n3" and not release.is_set():
                await asyncio.sleep(60)  # interrupted here
            return _echo(ctx)

        registry = SimpleNodeRegistry({"echo": work})
        graph = chain_graph(8)
        store = make_store()

        async def interrupted() -> UUID:
            runner = FlowRunner(graph, registry, store=store)
            task = asyncio.ensure_future(runner.arun("in"))
            for _ in range(2000):  # a polling wait: the executor runs in the same loop
                if "n3" in ran:
                    break
                await asyncio.sleep(0.005)
            flow_id = runner.active_flows[0]
            task.cancel()  # the process "dies" with n3 in flight
            with pytest.raises(asyncio.CancelledError):
                await task
            return flow_id

        try:
            flow_id = asyncio.run(interrupted())
        finally:
            close_store(store)
        assert ran == ["n0", "n1", "n2", "n3"]
        release.set()
        reopened = make_store()
        try:
            assert call(reopened, "get_flow", flow_id).status is FlowStatus.RUNNING
            result = FlowRunner(chain_graph(3), registry, store=reopened).recover(flow_id)
        finally:
            close_store(reopened)
        assert ran == ["n0", "n1", "n2", "n3", "n3", "n4", "n5"]
        assert result.status is FlowStatus.COMPLETED
        assert result.final_output == "n5(n4(n3(n2(n1(n0(in))))))"

    def test_two_flows_at_once_on_one_store(self, make_store: Any) -> None:
        async def slow_echo(ctx: ExecutionContext) -> NodeResult:
            await asyncio.sleep(0.001)
            return _echo(ctx)

        registry = SimpleNodeRegistry({"echo": slow_echo})
        store = make_store()

        async def both() -> list[Any]:
            runner = FlowRunner(
                chain_graph(12), registry, store=store, dispatcher=AsyncDispatcher()
            )
            return list(await asyncio.gather(runner.arun("one"), runner.arun("two")))

        try:
            results = asyncio.run(both())
            expected = "n9(n8(n7(n6(n5(n4(n3(n2(n1(n0({}))))))))))"
            assert [r.final_output for r in results] == [
                expected.format("one"),
                expected.format("two"),
            ]
            for result in results:
                snap = call(store, "load_flow", result.flow_id)
                assert len(snap.records) == 12
        finally:
            close_store(store)
