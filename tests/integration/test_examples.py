"""The example graphs of examples/ run on the embedded defaults (in-memory store, the
installed node pack) and give exactly the outputs their comments promise."""

from __future__ import annotations

from pathlib import Path

import pytest

from quartermaster_engine import (
    FlowError,
    FlowEvent,
    FlowRunner,
    FlowStarted,
    FlowStatus,
    NodeStarted,
)
from quartermaster_graph import GraphSpec, load_graph, validate_graph
from quartermaster_graph.files import node_id_from_name

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture(autouse=True)
def installed_pack_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run on the core and the installed qm-nodes-std entry point only, whatever other
    backends the workspace holds."""
    monkeypatch.setenv("QM_LOAD_PLUGINS", "qm-nodes-std")


@pytest.fixture(params=["sync", "async"])
def dispatcher(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def example(name: str) -> GraphSpec:
    spec = load_graph(EXAMPLES / name)
    assert validate_graph(spec) == []
    return spec


def runner(spec: GraphSpec, dispatcher: str, events: list[FlowEvent] | None = None) -> FlowRunner:
    """A runner built as `qm run` builds one: from configuration and the installed plugins."""
    return FlowRunner.from_config(
        spec,
        {"dispatcher": {"name": dispatcher}},
        on_event=None if events is None else events.append,
    )


def started(events: list[FlowEvent], flow_id: object = None) -> list[str]:
    return [
        e.node_name
        for e in events
        if isinstance(e, NodeStarted) and (flow_id is None or e.flow_id == flow_id)
    ]


@pytest.mark.parametrize(
    ("ticket", "reply", "runs"),
    [
        (
            "URGENT: checkout fails for every customer",
            "Escalated to the on-call team right away: URGENT: checkout fails for every customer",
            6,
        ),
        (
            "My invoice is wrong",
            "Thanks for reaching out about billing. We have forwarded your ticket to the "
            "accounts team; expect an answer within one business day.",
            7,
        ),
        (
            "The site is down since 9am",
            "We are sorry for the trouble. Our on-call engineer is looking at: "
            "The site is down since 9am",
            7,
        ),
        (
            "How do I change my email?",
            "Thanks! A support agent will answer your question soon: How do I change my email?",
            7,
        ),
    ],
)
def test_ticket_router(ticket: str, reply: str, runs: int, dispatcher: str) -> None:
    events: list[FlowEvent] = []
    run = runner(example("ticket-router.yaml"), dispatcher, events)
    result = run.run(ticket)
    assert (result.status, result.final_output, result.error) == (
        FlowStatus.COMPLETED,
        reply,
        None,
    )
    assert run.store.get_all_memory(result.flow_id) == {"ticket_text": ticket, "reply": reply}
    assert len(started(events)) == runs


def test_parallel_review(dispatcher: str) -> None:
    events: list[FlowEvent] = []
    result = runner(example("parallel-review.yaml"), dispatcher, events).run("def f(): pass")
    assert result.status is FlowStatus.COMPLETED
    assert result.final_output == (
        "All three reviews are in.\n"
        "Security: check secrets and input validation in: def f(): pass\n"
        "Style: check naming and layout in: def f(): pass\n"
        "Tests: every change needs a test that fails without it."
    )
    assert started(events).count("Collect reviews") == 1
    assert len(started(events)) == 6


REVIEW_HINT = "Answer 'approve', or say what to change."


def test_approval_loop_pauses_loops_back_and_publishes(dispatcher: str) -> None:
    spec = example("approval-loop.yaml")
    events: list[FlowEvent] = []
    first = runner(spec, dispatcher, events)
    paused = first.run("Ship v2 on Friday")
    assert paused.status is FlowStatus.PAUSED
    assert [(w.node_name, w.prompt, w.visit) for w in paused.waiting] == [
        ("Review", f"Review 1 of 3: Ship v2 on Friday\n{REVIEW_HINT}", 1)
    ]
    again = first.resume(paused.flow_id, "make it Monday")
    assert [(w.prompt, w.visit) for w in again.waiting] == [
        (f"Review 2 of 3: Ship v2 on Friday (make it Monday)\n{REVIEW_HINT}", 2)
    ]
    # A second runner on the same store continues the flow, as another process would.
    second = FlowRunner.from_config(
        spec, {"dispatcher": {"name": dispatcher}}, store=first.store, on_event=events.append
    )
    done = second.resume(paused.flow_id, " Approve ")
    assert (done.status, done.final_output) == (
        FlowStatus.COMPLETED,
        "Published after 1 revision(s): Ship v2 on Friday (make it Monday)",
    )
    assert started(events) == [
        "Start", "Save draft", "Review",
        "Review", "Approved?", "Revise", "Review",
        "Review", "Approved?", "Publish", "End",
    ]  # fmt: skip


def test_approval_loop_fails_at_its_visit_limit(dispatcher: str) -> None:
    events: list[FlowEvent] = []
    run = runner(example("approval-loop.yaml"), dispatcher, events)
    result = run.run("Ship v3")
    for answer in ("shorter", "friendlier"):
        result = run.resume(result.flow_id, answer)
        assert result.status is FlowStatus.PAUSED
    assert (
        result.waiting[0].prompt == f"Review 3 of 3: Ship v3 (shorter) (friendlier)\n{REVIEW_HINT}"
    )
    result = run.resume(result.flow_id, "no")
    review = node_id_from_name("Review")
    assert result.status is FlowStatus.FAILED
    assert result.error == f"node 'Review' ({review}) exceeded its visit limit of 3"
    assert [(e.node_name, e.error) for e in events if isinstance(e, FlowError)] == [
        ("Review", f"node 'Review' ({review}) exceeded its visit limit of 3")
    ]
    assert started(events).count("Review") == 6  # three visits, each asked and answered
    assert (
        run.store.get_all_memory(result.flow_id)["draft"] == "Ship v3 (shorter) (friendlier) (no)"
    )


@pytest.mark.parametrize(
    ("ticket", "reply", "priority"),
    [
        ("The site is down!", "Filed as urgent priority: The site is down!", "urgent"),
        ("How do I export my data?", "Filed as low priority: How do I export my data?", "low"),
        ("Please change my plan", "Filed as normal priority: Please change my plan", "normal"),
    ],
)
def test_support_desk_runs_its_triage_sub_graph(
    ticket: str, reply: str, priority: str, dispatcher: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # the sub-graph path is relative to the repository root
    example("graphs/triage.yaml")
    events: list[FlowEvent] = []
    run = runner(example("support-desk.yaml"), dispatcher, events)
    result = run.run(f"  {ticket} ")
    assert (result.status, result.final_output) == (FlowStatus.COMPLETED, reply)
    flows = [(e.graph_name, e.parent_flow_id) for e in events if isinstance(e, FlowStarted)]
    assert flows == [("Support Desk", None), ("Ticket Triage", result.flow_id)]
    child_id = next(e.flow_id for e in events if isinstance(e, FlowStarted) and e.parent_flow_id)
    assert started(events, child_id) == ["Start", "Rate", priority.title(), "End"]
    child = run.store.get_flow(child_id)
    assert child is not None
    assert child.final_output == priority
