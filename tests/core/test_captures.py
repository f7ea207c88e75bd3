"""capture_as= on any node: its result read back as FlowResult.captures["name"] or
result["name"], from a run and from a stored flow; capture names are validated."""

from __future__ import annotations

import pytest

from qm_store_sqlite import SQLiteStore
from quartermaster_engine import ExecutionContext, FlowRunner, NodeResult, SimpleNodeRegistry
from quartermaster_graph import GraphBuilder, GraphValidationError, validate_graph


class Echo:
    def execute(self, context: ExecutionContext) -> NodeResult:
        name = context.current_node.name
        return NodeResult(
            success=True, output_text=f"{name}:{context.input_text}", data={"n": name}
        )


class Pick:
    def execute(self, context: ExecutionContext) -> NodeResult:
        return NodeResult(success=True, picked_node="left")


def registry() -> SimpleNodeRegistry:
    reg = SimpleNodeRegistry()
    reg.register("echo", Echo())
    reg.register("pick", Pick())
    return reg


def graph() -> GraphBuilder:
    return (
        GraphBuilder("G")
        .start()
        .node("echo", "Research", capture_as="research")
        .node("pick", "Route", traverse_out="SpawnPickedNode")
        .on("left")
        .node("echo", "Left", capture_as="left")
        .end()
        .on("right")
        .node("echo", "Right", capture_as="right")
        .end()
    )


def test_builder_stores_capture_as_in_metadata():
    spec = graph().build()
    assert {n.name: n.metadata.get("capture_as") for n in spec.nodes if n.type_name == "echo"} == {
        "Research": "research",
        "Left": "left",
        "Right": "right",
    }


def test_captures_hold_the_results_of_the_captured_nodes_that_ran():
    result = FlowRunner(graph().build(), registry()).run("q")
    assert result.success, result.error
    assert sorted(result.captures) == ["left", "research"]
    assert result.captures["research"].output_text == "Research:q"
    assert result["left"].output_text == "Left:"
    assert result["left"].data == {"n": "Left"}
    assert result["left"] is result.captures["left"]


def test_reading_a_capture_that_did_not_run_names_the_captured_ones():
    result = FlowRunner(graph().build(), registry()).run("q")
    with pytest.raises(KeyError) as caught:
        _ = result["right"]
    assert caught.value.args[0] == (
        f"no node captured as 'right' ran in flow {result.flow_id}; captured: 'left', 'research'"
    )


def test_captures_of_a_stored_flow(tmp_path):
    store = SQLiteStore(tmp_path / "flows.db")
    runner = FlowRunner(graph().build(), registry(), store=store)
    flow_id = runner.run("q").flow_id
    stored = FlowRunner(graph().build(), registry(), store=store).get_result(flow_id)
    assert {k: v.output_text for k, v in stored.captures.items()} == {
        "research": "Research:q",
        "left": "Left:",
    }


def test_capture_names_must_be_distinct_non_empty_strings():
    spec = (
        GraphBuilder("G")
        .start()
        .static("A", capture_as="x")
        .static("B", capture_as="x")
        .static("C", capture_as="")
        .build(validate=False)
    )
    a, b, c = spec.nodes[1:4]
    assert [(i.code, i.message) for i in validate_graph(spec)] == [
        (
            "duplicate-capture-name",
            f"'B' ({b.id}) is captured as 'x', as 'A' ({a.id}) is; capture names must be distinct",
        ),
        (
            "capture-name-invalid",
            f"'C' ({c.id}) has capture_as ''; it must be a non-empty string",
        ),
    ]
    with pytest.raises(GraphValidationError, match="duplicate-capture-name"):
        spec.validate()
