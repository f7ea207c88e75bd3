"""SubAssistant1: sub-graphs by path or name, run as child flows; missing or invalid
sub-graphs are found before the parent starts; a child's pause reaches the parent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from std_support import Recorder, line, nid, node, runner

from qm_nodes_std import SubAssistantSettings, register_graph, std_registry, unregister_graph
from quartermaster_engine import (
    ExecutionContext,
    FlowRunner,
    FlowStarted,
    FlowStatus,
    InMemoryStore,
    NodeConfigError,
    NodeResult,
    UserInputRequired,
)
from quartermaster_graph import GraphBuilder, GraphSpec

CHILD_YAML = """\
name: Shout
nodes:
  - {name: Start, type: Start1}
  - name: Loud
    type: Text1
    metadata: {text: "{{ input | upper }}!"}
  - {name: End, type: End1}
edges:
  - {from: Start, to: Loud}
  - {from: Loud, to: End}
"""

ASKING_YAML = """\
name: Asker
nodes:
  - {name: Start, type: Start1}
  - name: Name
    type: User1
    metadata: {text_snippets: ["Name for {{ input }}?"]}
  - name: Pick
    type: UserDecision1
    metadata: {prompt: "Colour?"}
  - {name: Red, type: Text1, metadata: {text: "{{ input }} likes red"}}
  - {name: Blue, type: Text1, metadata: {text: "{{ input }} likes blue"}}
  - {name: End, type: End1}
edges:
  - {from: Start, to: Name}
  - {from: Name, to: Pick}
  - {from: Pick, to: Red, label: red}
  - {from: Pick, to: Blue, label: blue}
  - {from: Red, to: End}
  - {from: Blue, to: End}
"""


@pytest.fixture
def graphs(tmp_path: Path) -> Path:
    folder = tmp_path / "graphs"
    folder.mkdir()
    (folder / "shout.yaml").write_text(CHILD_YAML, encoding="utf-8")
    (folder / "ask.yaml").write_text(ASKING_YAML, encoding="utf-8")
    return folder


@pytest.fixture
def registered() -> Iterator[None]:
    yield
    for name in ("shouter", "loop-a"):
        unregister_graph(name)


def parent(graph_ref: str, **metadata: object) -> GraphSpec:
    return line(
        ("Sub", node("SubAssistant1", graph=graph_ref, **metadata)),
        ("After", node("Text1", text="parent got {{ input }}")),
        name="parent",
    )


def test_a_sub_graph_runs_as_a_child_flow_sharing_store_and_listeners(graphs: Path) -> None:
    store = InMemoryStore()
    events = Recorder()
    run = runner(
        parent("shout.yaml"),
        SubAssistantSettings(search_path=[graphs]),
        store=store,
        on_event=events,
    )
    result = run.run("hello")
    assert (result.status, result.final_output) == (FlowStatus.COMPLETED, "parent got HELLO!")
    started = events.of(FlowStarted)
    child_id = started[1].flow_id
    assert [(e.graph_name, e.parent_flow_id, e.input) for e in started] == [
        ("parent", None, "hello"),
        ("Shout", result.flow_id, "hello"),
    ]
    assert {e.parent_flow_id for e in events.events if e.flow_id == child_id} == {result.flow_id}
    assert events.runs(child_id) == ["Start", "Loud", "End"]
    assert result.node_results[nid("Sub")].data == {"child_flow_id": str(child_id)}
    child = store.get_flow(child_id)
    assert child is not None
    assert (child.status, child.parent_flow_id) == (FlowStatus.COMPLETED, result.flow_id)


def test_paths_resolve_against_the_search_path_then_the_working_directory(
    graphs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(graphs.parent)
    assert runner(parent("graphs/shout.yaml")).run("a").final_output == "parent got A!"
    assert runner(parent(str(graphs / "shout.yaml"))).run("b").final_output == "parent got B!"
    other = graphs.parent / "other"
    other.mkdir()
    (other / "shout.yaml").write_text(CHILD_YAML.replace("!", "?"), encoding="utf-8")
    settings = SubAssistantSettings(search_path=[other, graphs])
    assert runner(parent("shout.yaml"), settings).run("c").final_output == "parent got C?"


def test_named_graphs_come_from_settings_or_the_registry(graphs: Path, registered: None) -> None:
    settings = SubAssistantSettings(graphs={"shouter": graphs / "shout.yaml"})
    assert runner(parent("shouter"), settings).run("a").final_output == "parent got A!"
    register_graph(
        "shouter", GraphBuilder("Whisper").start().text("Low", "{{ input | lower }}...").end()
    )
    assert runner(parent("shouter")).run("B").final_output == "parent got b..."
    # The settings' mapping wins over the registry.
    assert runner(parent("shouter"), settings).run("c").final_output == "parent got C!"


def test_the_0_1_5_sub_assistant_id_names_the_graph(graphs: Path, registered: None) -> None:
    register_graph("shouter", graphs / "shout.yaml")
    spec = GraphBuilder("p").start().sub_agent("Sub", graph_id="shouter").build()
    assert spec.nodes[1].metadata == {"graph": "shouter", "sub_assistant_id": "shouter"}
    spec.nodes[1].metadata["graph"] = ""
    assert FlowRunner(spec, std_registry()).run("x").final_output == "X!"


def test_a_missing_sub_graph_is_reported_before_the_parent_starts(
    graphs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(graphs)
    store = InMemoryStore()
    run = runner(parent("nope.yaml"), SubAssistantSettings(search_path=[graphs]), store=store)
    with pytest.raises(NodeConfigError) as caught:
        run.run("x")
    assert str(caught.value) == (
        "graph parent has invalid node settings:\n"
        f"  node 'Sub' ({nid('Sub')}): sub-graph 'nope.yaml' not found: it is no configured "
        f"or registered graph name and no file at {graphs / 'nope.yaml'}, {graphs / 'nope.yaml'}"
    )
    assert store.list_flows() == []
    with pytest.raises(NodeConfigError) as caught:
        runner(parent("")).run("x")
    assert str(caught.value).splitlines()[1] == (
        f"  node 'Sub' ({nid('Sub')}): metadata 'graph' is required: a file path or a "
        "registered name"
    )


def test_an_invalid_sub_graph_is_reported_before_the_parent_starts(graphs: Path) -> None:
    (graphs / "bad.yaml").write_text(
        CHILD_YAML.replace("{{ input | upper }}!", "{{ input | upper }"), encoding="utf-8"
    )
    (graphs / "broken.yaml").write_text("name: x\nnodes: [\n", encoding="utf-8")
    (graphs / "wrapper.yaml").write_text(
        CHILD_YAML.replace(
            'type: Text1\n    metadata: {text: "{{ input | upper }}!"}',
            "type: SubAssistant1\n    metadata: {graph: bad.yaml}",
        ),
        encoding="utf-8",
    )
    settings = SubAssistantSettings(search_path=[graphs])
    with pytest.raises(NodeConfigError) as caught:
        runner(parent("bad.yaml"), settings).run("x")
    assert str(caught.value).splitlines()[1] == (
        f"  node 'Sub' ({nid('Sub')}): sub-graph 'bad.yaml' has invalid nodes: node 'Loud': "
        "metadata 'text': invalid template '{{ input | upper }': unexpected '}' (line 1)"
    )
    with pytest.raises(NodeConfigError) as caught:
        runner(parent("wrapper.yaml"), settings).run("x")
    assert str(caught.value).splitlines()[1] == (
        f"  node 'Sub' ({nid('Sub')}): sub-graph 'wrapper.yaml' has invalid nodes: node 'Loud': "
        "sub-graph 'bad.yaml' has invalid nodes: node 'Loud': metadata 'text': invalid "
        "template '{{ input | upper }': unexpected '}' (line 1)"
    )
    with pytest.raises(NodeConfigError) as caught:
        runner(parent("broken.yaml"), settings).run("x")
    assert (
        str(caught.value)
        .splitlines()[1]
        .startswith(
            f"  node 'Sub' ({nid('Sub')}): sub-graph file {graphs / 'broken.yaml'} cannot be "
            f"loaded: {graphs / 'broken.yaml'}:3: invalid YAML"
        )
    )


def test_sub_graphs_that_run_each_other_are_refused(graphs: Path, registered: None) -> None:
    for name, target in (("a.yaml", "b.yaml"), ("b.yaml", "a.yaml")):
        (graphs / name).write_text(
            CHILD_YAML.replace(
                'type: Text1\n    metadata: {text: "{{ input | upper }}!"}',
                f"type: SubAssistant1\n    metadata: {{graph: {target}}}",
            ),
            encoding="utf-8",
        )
    settings = SubAssistantSettings(search_path=[graphs])
    with pytest.raises(NodeConfigError) as caught:
        runner(parent("a.yaml"), settings).run("x")
    a, b = graphs / "a.yaml", graphs / "b.yaml"
    assert str(caught.value).splitlines()[1] == (
        f"  node 'Sub' ({nid('Sub')}): sub-graph 'a.yaml' has invalid nodes: node 'Loud': "
        f"sub-graph 'b.yaml' has invalid nodes: node 'Loud': sub-graphs run each other in a "
        f"cycle: {a} -> {b} -> {a}"
    )
    register_graph("loop-a", GraphBuilder("A").start().sub_graph("Again", "loop-a").end())
    with pytest.raises(NodeConfigError) as caught:
        runner(parent("loop-a")).run("x")
    assert str(caught.value).splitlines()[1] == (
        f"  node 'Sub' ({nid('Sub')}): sub-graph 'loop-a' has invalid nodes: node 'Again': "
        "sub-graphs run each other in a cycle: registered graph 'loop-a' -> registered "
        "graph 'loop-a'"
    )


def test_a_child_pause_reaches_the_parent_and_the_answer_the_child(graphs: Path) -> None:
    events = Recorder()
    store = InMemoryStore()
    settings = SubAssistantSettings(search_path=[graphs])
    spec = parent("ask.yaml")
    first = runner(spec, settings, store=store, on_event=events)
    paused = first.run("the form")
    assert [(w.node_name, w.prompt, w.options) for w in paused.waiting] == [
        ("Sub", "Name for the form?", [])
    ]
    asked = events.of(UserInputRequired)
    child_id = asked[0].flow_id
    assert [(e.flow_id, e.node_name, e.parent_flow_id) for e in asked] == [
        (child_id, "Name", paused.flow_id),
        (paused.flow_id, "Sub", None),
    ]
    # Another runner on the same store (as another process would) continues it.
    second = runner(spec, settings, store=store, on_event=events)
    again = second.resume(paused.flow_id, "Ada")
    assert [(w.prompt, w.options) for w in again.waiting] == [("Colour?", ["red", "blue"])]
    again = second.resume(paused.flow_id, "green")
    assert [(w.prompt, w.options) for w in again.waiting] == [
        ("'green' is not one of the options: red, blue\nColour?", ["red", "blue"])
    ]
    done = second.resume(paused.flow_id, "Blue")
    assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "parent got Ada likes blue")
    child = store.get_flow(child_id)
    assert child is not None
    assert child.status is FlowStatus.COMPLETED
    assert events.runs(child_id) == ["Start", "Name", "Name", "Pick", "Pick", "Pick", "Blue", "End"]


def test_a_failed_child_fails_the_node_and_a_retry_starts_a_fresh_child(graphs: Path) -> None:
    calls: list[int] = []

    async def flaky(ctx: ExecutionContext) -> NodeResult:
        calls.append(ctx.attempt)
        if len(calls) == 1:
            return NodeResult(success=False, error="flaky the first time")
        return NodeResult(output_text=f"ok {ctx.input_text}")

    child = GraphBuilder("Flaky").start().node("flaky", "F").end().build()
    register_graph("shouter", child)
    try:
        registry = std_registry()
        registry.register("flaky", flaky)
        once = line(("Sub", node("SubAssistant1", graph="shouter")), name="parent")
        result = FlowRunner(once, registry).run("x")
        child_id = result.node_results[nid("Sub")].data["child_flow_id"]
        assert result.status is FlowStatus.FAILED
        assert result.error == (
            f"node 'Sub' ({nid('Sub')}): sub-graph 'shouter' (flow {child_id}) failed: "
            f"node 'F' ({child.nodes[1].id}): flaky the first time"
        )

        calls.clear()
        retried = line(
            (
                "Sub",
                node(
                    "SubAssistant1",
                    graph="shouter",
                    fields={"error_handling": "Retry", "max_retries": 1, "retry_delay": 0},
                ),
            ),
            name="parent",
        )
        events = Recorder()
        result = FlowRunner(retried, registry, on_event=events).run("y")
        assert (result.status, result.final_output) == (FlowStatus.COMPLETED, "ok y")
        children = [e.flow_id for e in events.of(FlowStarted) if e.parent_flow_id is not None]
        assert len(set(children)) == 2
    finally:
        unregister_graph("shouter")
