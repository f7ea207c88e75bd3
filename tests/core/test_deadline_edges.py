"""A wait's deadline taking an edge: ``.user(..., timeout=, on_timeout=Take(label))``
(metadata ``on_timeout_edge``; docs/time.md): built, validated, run both ways on the
memory store and SQLite, and read back by history and fork."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from quartermaster_engine import Engine, FlowEvent, FlowStatus
from quartermaster_engine.stores.memory_store import InMemoryStore
from quartermaster_engine.stores.sqlite_store import SQLiteStore
from quartermaster_engine.testing import TestClock
from quartermaster_graph import GraphBuilder, GraphSpec, Take
from quartermaster_graph.validation import GraphValidationError

START = TestClock().now()


def approve_graph() -> GraphSpec:
    return (
        GraphBuilder("Approve")
        .start()
        .user("Approve?", ["Ship it?"], timeout="1h", on_timeout=Take("late"))
        .on("late")
        .static("Chase", "no reply: chased")
        .end()
        .static("Ship", "shipped")
        .end()
        .build()
    )


def _name(spec: GraphSpec, node_id: UUID) -> str:
    node = spec.get_node(node_id)
    assert node is not None
    return node.name


def test_the_builder_makes_the_deadline_branch_with_on() -> None:
    spec = approve_graph()
    edges = sorted(
        (_name(spec, e.source_id), e.label, _name(spec, e.target_id)) for e in spec.edges
    )
    assert edges == [
        ("Approve?", "", "Ship"),
        ("Approve?", "late", "Chase"),
        ("Chase", "", "End"),  # the deadline branch ends on its own
        ("Ship", "", "End"),
        ("Start", "", "Approve?"),
    ]
    node = spec.get_node_by_name("Approve?")
    assert node is not None
    assert node.metadata == {
        "text_snippets": ["Ship it?"],
        "timeout": "1h",
        "on_timeout_edge": "late",
    }
    builder = GraphBuilder("G").start().user("Ask", timeout="1h", on_timeout=Take("late"))
    with pytest.raises(
        ValueError,
        match=r"^on\('soon'\) in graph 'G': user node 'Ask' takes only its on_timeout "
        r"edge 'late'$",
    ):
        builder.on("soon")
    with pytest.raises(ValueError, match=r"^user\('Ask'\): Take\(\) needs a non-empty edge label$"):
        GraphBuilder("G").start().user("Ask", timeout="1h", on_timeout=Take(""))


def test_an_unknown_label_is_refused_at_build_naming_the_node_and_label() -> None:
    builder = (
        GraphBuilder("G").start().user("Ask", timeout="1h", on_timeout=Take("late")).static("S")
    )
    with pytest.raises(GraphValidationError) as raised:
        builder.build()
    assert re.fullmatch(
        r"graph 'G' has 1 error:\n  error \[on-timeout-edge-invalid\] 'Ask' \([0-9a-f-]{36}\): "
        r"on_timeout_edge 'late' is the label of none of its outgoing edges "
        r"\(their labels: none\)",
        str(raised.value),
    )
    both = {"timeout": "1h", "on_timeout": "no", "on_timeout_edge": "late"}
    with pytest.raises(GraphValidationError, match=r"give on_timeout .* not both"):
        GraphBuilder("G").start().node("User1", "Ask", metadata=both).end().build()
    bare = {"on_timeout_edge": "late"}
    with pytest.raises(GraphValidationError, match=r"on_timeout_edge 'late' needs a timeout"):
        GraphBuilder("G").start().node("User1", "Ask", metadata=bare).end().build()


def _store(kind: str, tmp_path: Path) -> Any:
    return InMemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "flows.db")


def _ran(records: list[Any], spec: GraphSpec) -> list[tuple[str, str]]:
    return [(_name(spec, r.node_id), r.status.value) for r in records]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_passed_deadline_takes_its_edge_only(kind: str, tmp_path: Path) -> None:
    clock = TestClock(skip=False)
    spec = approve_graph()

    async def main() -> None:
        seen: list[FlowEvent] = []
        store = _store(kind, tmp_path)
        async with Engine(store=store, clock=clock, on_event=seen.append) as engine:
            paused = await engine.run(spec, "order 42")
            assert (paused.status, paused.wakes_at) == (FlowStatus.PAUSED, START + 3600)
            clock.advance("1h")
            assert await engine.wake_due() == [paused.flow_id]
            done = await engine.result(paused.flow_id)
            assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "no reply: chased")
            passed = [e for e in seen if e.type == "DeadlinePassed"]
            assert [(e.node_name, e.deadline, e.answer, e.edge) for e in passed] == [  # type: ignore[attr-defined]
                ("Approve?", START + 3600, "", "late")
            ]
            assert [e.node_name for e in seen if e.type == "NodeDead"] == ["Ship", "End"]  # type: ignore[attr-defined]
            snap = await engine.flows.show(paused.flow_id)
            assert _ran(snap.records, spec) == [
                ("Start", "finished"),
                ("Approve?", "waiting_user"),
                ("Approve?", "finished"),
                ("Chase", "finished"),
                ("End", "finished"),
            ]
            approve = snap.records[2]
            assert approve.result == "order 42"  # its input, passed on
            assert approve.output_data == {"deadline_passed": START + 3600}
            assert await engine.wake_due() == []  # once

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_an_answer_takes_every_edge_but_the_deadlines(kind: str, tmp_path: Path) -> None:
    clock = TestClock(skip=False)
    spec = approve_graph()

    async def main() -> None:
        seen: list[str] = []
        store = _store(kind, tmp_path)
        async with Engine(
            store=store, clock=clock, on_event=lambda e: seen.append(e.type)
        ) as engine:
            paused = await engine.run(spec, "order 42")
            clock.advance("30m")
            done = await engine.resume(paused.flow_id, "yes")
            assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "shipped")
            clock.advance("1h")
            assert await engine.wake_due() == []
            assert "DeadlinePassed" not in seen
            snap = await engine.flows.show(paused.flow_id)
            ran = _ran(snap.records, spec)
            assert ("Chase", "finished") not in ran
            assert ran[-2:] == [("Ship", "finished"), ("End", "finished")]

    asyncio.run(main())


def test_history_and_fork_of_a_flow_whose_deadline_took_its_edge(tmp_path: Path) -> None:
    clock = TestClock(skip=False)
    spec = approve_graph()

    async def main() -> None:
        async with Engine(store=SQLiteStore(tmp_path / "flows.db"), clock=clock) as engine:
            paused = await engine.run(spec, "order 42")
            clock.advance("1h")
            await engine.wake_due()
            history = await engine.history(paused.flow_id)
            assert [(c.node_name, c.outcome) for c in history] == [
                ("Start", "finished"),
                ("Approve?", "waiting_user"),
                ("Approve?", "finished"),
                ("Chase", "finished"),
                ("End", "finished"),
            ]
            # A fork at the last checkpoint replays the deadline's edge: it has ended.
            whole = await engine.fork(paused.flow_id)
            assert (await engine.result(whole)).final_output == "no reply: chased"
            # A fork at the wait waits again, its deadline an hour from the fork.
            clock.advance("5h")
            again = await engine.fork(paused.flow_id, at=2)
            waiting = await engine.recover(again)
            assert (waiting.status, waiting.wakes_at) == (FlowStatus.PAUSED, clock.now() + 3600)
            answered = await engine.resume(again, "yes")
            assert answered.final_output == "shipped"

    asyncio.run(main())
