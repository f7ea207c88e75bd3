"""Back1 / .back(): loop back to Start with an iteration limit; in a sub-graph's flow,
return to the parent with what reached it."""

from __future__ import annotations

import pytest

from quartermaster_engine import (
    ExecutionContext,
    FlowEvent,
    FlowRunner,
    FlowStatus,
    NodeResult,
    NodeStarted,
    SimpleNodeRegistry,
)
from quartermaster_graph import GraphBuilder, GraphSpec, NodeType, TraverseOut

from .support import build, node_id


class Count:
    """Counts its runs; outputs ``n=<count>``."""

    def __init__(self) -> None:
        self.calls = 0

    def execute(self, context: ExecutionContext) -> NodeResult:
        self.calls += 1
        return NodeResult(success=True, output_text=f"n={self.calls}")


class ExitAfter:
    """Picks ``exit`` on its ``threshold``-th run, ``loop`` before."""

    def __init__(self, threshold: int) -> None:
        self.calls, self.threshold = 0, threshold

    def execute(self, context: ExecutionContext) -> NodeResult:
        self.calls += 1
        return NodeResult(
            success=True, picked_node="exit" if self.calls >= self.threshold else "loop"
        )


def loop_graph(max_iterations: int | None = None) -> GraphSpec:
    return (
        GraphBuilder("Loop")
        .start()
        .node("count", "Counter")
        .node("exit_after", "Done?", traverse_out=TraverseOut.SPAWN_PICKED)
        .on("loop")
        .back(max_iterations=max_iterations)
        .end()
        .on("exit")
        .end()
        .build()
    )


def test_the_builder_writes_a_back1_node_that_loops_to_start():
    spec = loop_graph(max_iterations=4)
    back = next(n for n in spec.nodes if n.type_name == "Back1")
    assert (back.name, back.traverse_out, back.metadata) == (
        "Back",
        TraverseOut.SPAWN_START,
        {"max_iterations": 4},
    )
    names = {n.id: n.name for n in spec.nodes}
    assert [(names[e.source_id], e.label, names[e.target_id]) for e in spec.edges] == [
        ("Start", "", "Counter"),
        ("Counter", "", "Done?"),
        ("Done?", "loop", "Back"),
        ("Done?", "exit", "End"),
    ]
    assert spec.validate() == []


def test_back_loops_to_start_until_the_exit_is_taken():
    counter, done = Count(), ExitAfter(3)
    events: list[FlowEvent] = []
    result = FlowRunner(
        loop_graph(),
        SimpleNodeRegistry({"count": counter, "exit_after": done}),
        on_event=events.append,
    ).run("go")
    assert result.status is FlowStatus.COMPLETED, result.error
    assert (counter.calls, done.calls) == (3, 3)
    assert [e.node_name for e in events if isinstance(e, NodeStarted)].count("Start") == 3
    assert result.final_output == ""  # the exit branch's End got Done?'s (empty) output


def test_back_stops_at_its_iteration_limit_with_an_error_naming_it():
    counter = Count()
    spec = GraphBuilder("Runaway").start().node("count", "Body").back(max_iterations=5).build()
    result = FlowRunner(spec, SimpleNodeRegistry({"count": counter})).run("go")
    back = next(n for n in spec.nodes if n.type_name == "Back1")
    assert result.status is FlowStatus.FAILED
    assert counter.calls == 6
    assert result.error == f"node 'Back' ({back.id}) exceeded its visit limit of 5"


def test_a_back_node_of_0_7_with_traverse_out_spawn_none_still_loops():
    counter = Count()
    spec = build(
        {
            "Start": "Start1",
            "Body": "count",
            "Back": {
                "type": NodeType.BACK.value,
                "traverse_out": "SpawnNone",
                "metadata": {"max_iterations": 2},
            },
        },
        [("Start", "Body"), ("Body", "Back")],
    )
    result = FlowRunner(spec, SimpleNodeRegistry({"count": counter})).run("go")
    assert counter.calls == 3
    assert result.error == f"node 'Back' ({node_id('Back')}) exceeded its visit limit of 2"


def test_back_in_a_sub_graph_returns_to_the_parent_with_its_input():
    child_counter, second = Count(), Count()
    sub = GraphBuilder("Sub").start().node("count", "Child").back().build()

    class RunSub:
        async def execute(self, context: ExecutionContext) -> NodeResult:
            child = await context.run_child(sub, context.input_text)
            assert child.status is FlowStatus.COMPLETED, child.error
            return NodeResult(success=True, output_text=f"child said {child.final_output}")

    main = GraphBuilder("Main").start().node("sub", "Invoke").node("second", "Second").end().build()
    registry = SimpleNodeRegistry({"count": child_counter, "sub": RunSub(), "second": second})
    result = FlowRunner(main, registry).run("hello")
    assert result.status is FlowStatus.COMPLETED, result.error
    assert (child_counter.calls, second.calls) == (1, 1)
    assert result.node_results[main.nodes[1].id].output_text == "child said n=1"


@pytest.mark.parametrize("bad", [0, -1, True, 2.5])
def test_back_refuses_an_iteration_limit_that_is_not_a_positive_int(bad):
    with pytest.raises(ValueError, match=r"^back\('Back'\): max_iterations must be an int >= 1$"):
        GraphBuilder("g").start().back(max_iterations=bad)
