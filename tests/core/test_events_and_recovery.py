"""Events serialize to JSON, failing handlers never break a flow, interrupted flows recover."""

from __future__ import annotations

import json
import logging
from typing import Any
from uuid import UUID

import pytest
from support import Trace, build, chain, node_id

from quartermaster_engine import (
    FlowEvent,
    FlowRunner,
    FlowStatus,
    InMemoryStore,
    NodeStarted,
    event_from_dict,
)
from quartermaster_engine.stores.records import Commit


def test_every_event_is_json_serializable_and_reads_back_equal() -> None:
    trace = Trace().on("step")
    FlowRunner(chain(3), trace.registry, on_event=trace.events.append).run("in")
    for event in trace.events:
        data = json.loads(event.to_json())
        assert data["type"] == event.type
        assert data["flow_id"] == str(event.flow_id)
        assert event_from_dict(data) == event


def test_a_raising_on_event_handler_is_logged_and_the_flow_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    def broken(event: FlowEvent) -> None:
        calls.append(event.type)
        raise ValueError("handler bug")

    trace = Trace().on("step")
    with caplog.at_level(logging.ERROR, logger="quartermaster_engine.runner"):
        result = FlowRunner(chain(3), trace.registry, on_event=broken).run("in")
    assert result.status is FlowStatus.COMPLETED
    assert len(calls) == 8
    failures = [r for r in caplog.records if "event listener on_event failed" in r.getMessage()]
    assert len(failures) == 1  # reported once per flow, not once per event


class FlakyStore(InMemoryStore):
    """A real in-memory store that refuses commits after ``fail_after`` of them."""

    def __init__(self, fail_after: int) -> None:
        super().__init__()
        self.fail_after = fail_after
        self.commits = 0

    def commit(self, flow_id: UUID, commit: Commit) -> None:
        self.commits += 1
        if self.commits > self.fail_after:
            raise ConnectionError("connection reset by peer")
        super().commit(flow_id, commit)

    def describe(self) -> str:
        return "flaky in-memory store"


def test_a_run_interrupted_by_the_store_fails_clearly_and_recover_completes_it() -> None:
    store = FlakyStore(fail_after=6)
    trace = Trace().on("step")
    runner = FlowRunner(chain(10), trace.registry, store=store)
    broken = runner.run("in")
    assert broken.status is FlowStatus.FAILED
    assert broken.error is not None
    assert broken.error.startswith("the store (flaky in-memory store) failed while committing flow")
    assert broken.error.endswith("ConnectionError: connection reset by peer")
    assert store.get_flow(broken.flow_id).status is FlowStatus.RUNNING
    ran_before = trace.names()

    store.fail_after = 10**9
    recovered = runner.recover(broken.flow_id)
    assert recovered.status is FlowStatus.COMPLETED
    assert recovered.final_output == "n7(n6(n5(n4(n3(n2(n1(n0(in))))))))"
    names = trace.names()
    # The commit that failed was n4's: only n4 runs again, nothing committed does.
    assert ran_before == ["n0", "n1", "n2", "n3", "n4"]
    assert names[len(ran_before) :] == ["n4", "n5", "n6", "n7"]


def test_recover_is_a_no_op_for_paused_and_ended_flows() -> None:
    trace = Trace().on("step")
    runner = FlowRunner(chain(4), trace.registry)
    done = runner.run("in")
    again = runner.recover(done.flow_id)
    assert (again.status, again.final_output) == (FlowStatus.COMPLETED, done.final_output)
    assert trace.count("n0") == 1


def test_graph_of_a_stored_flow_is_used_to_recover_it() -> None:
    """A new process rebuilds its graph with new ids; recovery uses the stored graph."""
    store = FlakyStore(fail_after=3)
    trace = Trace().on("step")
    broken = FlowRunner(chain(6), trace.registry, store=store).run("in")
    store.fail_after = 10**9
    other_graph = build({"Start": "Start1", "X": "step"}, [("Start", "X")])
    recovered = FlowRunner(other_graph, trace.registry, store=store).recover(broken.flow_id)
    assert recovered.final_output == "n3(n2(n1(n0(in))))"


def events_of(result_events: list[Any], kind: type) -> list[Any]:
    return [e for e in result_events if isinstance(e, kind)]


def test_node_started_carries_visit_and_attempt() -> None:
    trace = Trace().on("step")
    FlowRunner(chain(3), trace.registry, on_event=trace.events.append).run("in")
    started = events_of(trace.events, NodeStarted)
    assert [(e.node_id, e.visit, e.attempt) for e in started] == [
        (node_id("Start"), 1, 1),
        (node_id("n0"), 1, 1),
        (node_id("End"), 1, 1),
    ]


def test_constructing_a_runner_with_wrong_parts_fails_at_once() -> None:
    graph = chain(3)
    from quartermaster_engine import SyncDispatcher

    with pytest.raises(TypeError, match="store SyncDispatcher is not a store: it lacks"):
        FlowRunner(graph, None, SyncDispatcher())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="node_registry must have a get_executor"):
        FlowRunner(graph, {"step": object()})  # type: ignore[arg-type]


def test_unknown_custom_node_types_fail_before_anything_runs() -> None:
    from quartermaster_engine import UnknownNodeTypeError

    trace = Trace()
    graph = build({"Start": "Start1", "C": "acme.Classifier"}, [("Start", "C")])
    runner = FlowRunner(graph, trace.registry)
    with pytest.raises(UnknownNodeTypeError, match=r"no executor for node type 'acme\.Classifier'"):
        runner.run("x")
    assert runner.store.list_flows() == []


class PickyStore(InMemoryStore):
    """A real in-memory store that refuses data a JSON store could not save."""

    def commit(self, flow_id: UUID, commit: Commit) -> None:
        if commit.record is not None and "handle" in commit.record.output_data:
            from quartermaster_engine.stores.base import StoreDataError

            raise StoreDataError("output_data is not JSON: object")
        super().commit(flow_id, commit)


def test_data_the_store_cannot_save_fails_the_flow_naming_the_node() -> None:
    from quartermaster_engine import NodeResult

    store = PickyStore()
    trace = Trace().on("step", lambda ctx: NodeResult(output_text="x", data={"handle": object()}))
    result = FlowRunner(chain(3), trace.registry, store=store).run("in")
    assert result.status is FlowStatus.FAILED
    assert result.error == (
        f"node 'n0' ({node_id('n0')}) produced data the store (PickyStore) cannot save: "
        "output_data is not JSON: object"
    )
    assert store.get_flow(result.flow_id).status is FlowStatus.FAILED


def test_plugin_events_with_string_ids_and_lists_of_uuids_round_trip() -> None:
    from dataclasses import dataclass

    from quartermaster_engine import FlowPaused

    @dataclass(slots=True)
    class ToolCalled(FlowEvent):
        call_id: str = ""
        node_id: UUID | None = None

    event = ToolCalled(flow_id=node_id("f"), call_id="call_1", node_id=node_id("n"), seq=4)
    assert event_from_dict(json.loads(event.to_json())) == event
    paused = FlowPaused(flow_id=node_id("f"), waiting=[node_id("a"), node_id("b")])
    assert event_from_dict(json.loads(paused.to_json())) == paused


def test_context_emit_sends_a_plugin_event_numbered_with_the_rest() -> None:
    from dataclasses import dataclass

    from quartermaster_engine import ExecutionContext, NodeResult

    @dataclass(slots=True)
    class Noted(FlowEvent):
        note: str = ""

    def note(ctx: ExecutionContext) -> NodeResult:
        ctx.emit(Noted(flow_id=ctx.flow_id, note=ctx.current_node.name))
        return NodeResult(output_text="ok")

    trace = Trace().on_blocking("step", note)
    FlowRunner(chain(3), trace.registry, on_event=trace.events.append).run("x")
    assert trace.event_types()[3:6] == ["NodeStarted", "Noted", "NodeFinished"]
    assert [e.seq for e in trace.events] == list(range(1, 10))


def test_no_token_reaches_listeners_after_a_stop_request() -> None:
    from quartermaster_engine import AsyncDispatcher, ExecutionContext, NodeResult, TokenGenerated

    def stream(ctx: ExecutionContext) -> NodeResult:
        for i in range(2000):
            ctx.emit_token(str(i))
        return NodeResult(output_text="streamed")

    seen: list[str] = []
    runner: FlowRunner

    def on_event(event: FlowEvent) -> None:
        if isinstance(event, TokenGenerated):
            seen.append(event.token)
            if len(seen) == 1:
                runner.stop(event.flow_id)

    trace = Trace().on_blocking("step", stream)
    runner = FlowRunner(chain(3), trace.registry, dispatcher=AsyncDispatcher(), on_event=on_event)
    result = runner.run("x")
    assert result.status is FlowStatus.STOPPED
    assert seen == ["0"]


def test_a_flow_created_but_never_started_is_started_by_recover() -> None:
    """The process died between storing the flow and queueing its start node."""
    import time

    from quartermaster_engine.stores.records import FlowRecord

    store = InMemoryStore()
    graph = chain(4)
    flow_id = node_id("never-started")
    now = time.time()
    store.create_flow(FlowRecord(flow_id, graph, "in", created_at=now, updated_at=now))
    trace = Trace().on("step")
    result = FlowRunner(graph, trace.registry, store=store).recover(flow_id)
    assert (result.status, result.final_output) == (FlowStatus.COMPLETED, "n1(n0(in))")
    assert trace.names() == ["n0", "n1"]


def test_an_answer_committed_before_a_crash_is_recovered() -> None:
    """The process died after committing a resume's answer, before marking the flow
    running: recover continues it instead of leaving it paused with nobody waiting."""
    from quartermaster_engine import ExecutionContext, NodeResult
    from quartermaster_engine.stores.records import Commit

    def ask(ctx: ExecutionContext) -> NodeResult:
        if ctx.user_input is None:
            return NodeResult(wait_for_user=True, user_prompt="ok?")
        return NodeResult(output_text=f"answer={ctx.user_input}")

    store = InMemoryStore()
    trace = Trace().on("ask", ask)
    graph = build({"Start": "Start1", "Q": "ask", "End": "End1"}, [("Start", "Q"), ("Q", "End")])
    paused = FlowRunner(graph, trace.registry, store=store).run("in")
    waiting = store.load_flow(paused.flow_id).pending[0]
    waiting.waiting, waiting.user_input = False, "yes"
    store.commit(paused.flow_id, Commit(enqueue=[waiting]))  # what resume writes first
    result = FlowRunner(graph, trace.registry, store=store).recover(paused.flow_id)
    assert (result.status, result.final_output) == (FlowStatus.COMPLETED, "answer=yes")
