"""Graph files: exact round trips, the hand-written form, and bad files of every kind."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from textwrap import dedent
from uuid import uuid4, uuid5

import pytest
import yaml

from quartermaster_graph import (
    GraphBuilder,
    GraphEdge,
    GraphFileError,
    GraphNode,
    GraphSpec,
    MessageType,
    NodePosition,
    NodeType,
    ThoughtType,
    TraverseIn,
    TraverseOut,
    dump_graph_text,
    from_json,
    from_yaml,
    json_schema,
    load_graph,
    parse_graph_text,
    save_graph,
    to_json,
    to_yaml,
    validate_graph,
)
from quartermaster_graph.files import ID_NAMESPACE, node_id_from_name


def readme_graph() -> GraphSpec:
    return (
        GraphBuilder("Support Agent")
        .start()
        .instruction("Classify", model="gpt-4o")
        .decision("Route", options=["billing", "technical"])
        .on("billing")
        .instruction("Handle billing")
        .end()
        .on("technical")
        .instruction("Handle technical")
        .end()
        .build()
    )


def rich_graph(created_at: datetime) -> GraphSpec:
    start, custom, text = uuid4(), uuid4(), uuid4()
    return GraphSpec(
        name="Ünïcödé graph ✓",
        start_node_id=start,
        created_at=created_at,
        features="streaming",
        nodes=[
            GraphNode(id=start, type=NodeType.START, name="Start"),
            GraphNode(
                id=custom,
                type="acme.Classifier",
                name="Klassifizierer — 分类",
                traverse_in=TraverseIn.AWAIT_ALL,
                traverse_out=TraverseOut.SPAWN_PICKED,
                thought_type=ThoughtType.CONTINUE,
                message_type=MessageType.TOOL,
                metadata={
                    "nested": {"list": [1, 2.5, None, True, "yes", "no", "on", "null", "1e3"]},
                    "deep": [{"a": {"b": [{"c": "ç"}]}}],
                    "multiline": "line 1\nline 2\n  indented\n",
                    "emoji": "🚀",
                    "big": 2**70,
                    "date-like": "2024-01-02",
                },
                position=NodePosition(x=10, y=-20, icon="gear"),
                max_retries=0,
                retry_delay=0.25,
                timeout=12.5,
            ),
            GraphNode(id=text, type=NodeType.TEXT, name="", metadata={"text": "{{ input }}"}),
        ],
        edges=[
            GraphEdge(source_id=start, target_id=custom),
            GraphEdge(
                source_id=custom, target_id=text, label="ja", is_main=False, points=[(1.5, 2.0)]
            ),
            GraphEdge(source_id=custom, target_id=start, label="loop"),
            GraphEdge(source_id=custom, target_id=uuid4(), label="dangling"),
        ],
    )


# -- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_readme_graph_round_trips_through_a_file(tmp_path, suffix):
    spec = readme_graph()
    path = tmp_path / f"support{suffix}"
    save_graph(spec, path)
    assert load_graph(path) == spec
    assert load_graph(str(path)) == spec


@pytest.mark.parametrize(
    "created_at",
    [
        datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC),
        datetime(2024, 1, 1, 8, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(1999, 12, 31, 0, 0, 0, 1),
    ],
)
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_rich_graph_round_trips_exactly(fmt, created_at):
    spec = rich_graph(created_at)
    text = dump_graph_text(spec, fmt)
    loaded = parse_graph_text(text, fmt)
    assert loaded == spec
    assert loaded.created_at.utcoffset() == created_at.utcoffset()
    assert loaded.nodes[1].type == "acme.Classifier"
    assert loaded.nodes[0].type is NodeType.START


def test_dumps_are_readable_and_unicode_is_kept_as_is():
    spec = rich_graph(datetime(2024, 1, 1, tzinfo=UTC))
    assert "Ünïcödé graph ✓" in dump_graph_text(spec, "json")
    assert "Ünïcödé graph ✓" in dump_graph_text(spec, "yaml")
    assert json.loads(dump_graph_text(spec, "json")) == to_json(spec)
    assert yaml.safe_load(dump_graph_text(spec, "yaml")) == to_json(spec)


def test_model_methods_and_0_1_5_module_functions_round_trip(tmp_path):
    spec = readme_graph()
    assert GraphSpec.from_yaml(spec.to_yaml()) == spec
    assert GraphSpec.from_json(spec.to_json()) == spec
    assert from_yaml(to_yaml(spec)) == spec
    assert from_json(to_json(spec)) == spec
    spec.save(tmp_path / "g.yaml")
    assert load_graph(tmp_path / "g.yaml") == spec


def test_json_schema_describes_the_full_form():
    schema = json_schema()
    assert schema["title"] == "GraphSpec"
    assert schema["required"] == ["start_node_id"]
    assert {"nodes", "edges", "start_node_id", "created_at"} <= set(schema["properties"])


def test_save_replaces_the_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "g.json"
    path.write_text("old", encoding="utf-8")
    save_graph(readme_graph(), path)
    assert [p.name for p in tmp_path.iterdir()] == ["g.json"]
    assert load_graph(path).name == "Support Agent"


# -- the hand-written form ----------------------------------------------------------------

HAND_WRITTEN = """\
name: Greeter
nodes:
  - name: Start
    type: Start1
  - name: Ask
    type: User1
  - name: Is polite
    type: If1
    metadata:
      if_expression: '"please" in input.lower()'
  - name: Thanks
    type: Static1
    metadata: {static_text: Thank you!}
  - name: Hint
    type: Text1
    error_handling: Retry
    max_retries: 2
    metadata: {text: "Say please, {{ input }}"}
  - name: End
    type: End1
edges:
  - {from: Start, to: Ask}
  - {from: Ask, to: Is polite}
  - {from: Is polite, to: Thanks, label: true}
  - {from: Is polite, to: Hint, label: false}
  - {from: Thanks, to: End}
  - {from: Hint, to: Ask}
"""


def test_hand_written_form_loads_with_ids_derived_from_names(shape):
    spec = parse_graph_text(HAND_WRITTEN, "yaml", "greeter.yaml")
    assert shape(spec) == (
        [
            ("Start", "Start1"),
            ("Ask", "User1"),
            ("Is polite", "If1"),
            ("Thanks", "Static1"),
            ("Hint", "Text1"),
            ("End", "End1"),
        ],
        [
            ("Start", "", "Ask"),
            ("Ask", "", "Is polite"),
            ("Is polite", "true", "Thanks"),
            ("Is polite", "false", "Hint"),
            ("Thanks", "", "End"),
            ("Hint", "", "Ask"),
        ],
    )
    assert [n.id for n in spec.nodes] == [node_id_from_name(n.name) for n in spec.nodes]
    assert node_id_from_name("Start") == uuid5(ID_NAMESPACE, "node:Start")
    assert spec.start_node_id == node_id_from_name("Start")
    assert validate_graph(spec) == []


def test_hand_written_form_is_deterministic():
    first = parse_graph_text(HAND_WRITTEN, "yaml")
    second = parse_graph_text(HAND_WRITTEN, "yaml")
    assert (first.id, first.agent_id) == (second.id, second.agent_id)
    assert first.nodes == second.nodes
    assert first.edges == second.edges


def test_hand_written_nodes_take_the_builder_defaults_of_their_type():
    spec = parse_graph_text(HAND_WRITTEN, "yaml")
    polite, hint, end = spec.nodes[2], spec.nodes[4], spec.nodes[5]
    assert (polite.traverse_out, polite.thought_type, polite.message_type) == (
        TraverseOut.SPAWN_PICKED,
        ThoughtType.USE_PREVIOUS,
        MessageType.VARIABLE,
    )
    assert spec.nodes[1].message_type is MessageType.USER
    assert end.traverse_out is TraverseOut.SPAWN_NONE
    assert (hint.error_handling.value, hint.max_retries) == ("Retry", 2)
    assert hint.traverse_out is TraverseOut.SPAWN_ALL


def test_explicit_fields_win_over_type_defaults():
    text = dedent(
        """\
        nodes:
          - {name: Start, type: Start1}
          - {name: If, type: If1, traverse_out: SpawnAll}
        edges: []
        """
    )
    assert parse_graph_text(text, "yaml").nodes[1].traverse_out is TraverseOut.SPAWN_ALL


def test_explicit_start_ids_and_mixed_references():
    custom_id = uuid4()
    text = dedent(
        f"""\
        name: Mixed
        start: Begin
        nodes:
          - {{name: Begin, type: Start1}}
          - {{name: Work, type: acme.Worker, id: {custom_id}}}
        edges:
          - {{from: Begin, to: Work}}
          - {{source_id: {custom_id}, target_id: {node_id_from_name("Begin")}, label: again}}
        """
    )
    spec = parse_graph_text(text, "yaml")
    assert spec.start_node_id == node_id_from_name("Begin")
    assert spec.nodes[1].id == custom_id
    assert [(e.source_id, e.target_id, e.label) for e in spec.edges] == [
        (node_id_from_name("Begin"), custom_id, ""),
        (custom_id, node_id_from_name("Begin"), "again"),
    ]


def test_yes_and_no_stay_strings_in_yaml():
    text = dedent(
        """\
        nodes:
          - {name: Start, type: Start1}
          - {name: Ask, type: Decision1, metadata: {options: [yes, no, on, off]}}
          - {name: Y, type: Static1}
          - {name: N, type: Static1}
        edges:
          - {from: Start, to: Ask}
          - {from: Ask, to: Y, label: yes}
          - {from: Ask, to: N, label: no}
        """
    )
    spec = parse_graph_text(text, "yaml")
    assert spec.nodes[1].metadata == {"options": ["yes", "no", "on", "off"]}
    assert [e.label for e in spec.edges] == ["", "yes", "no"]


def test_hand_written_json_works_too():
    data = {
        "name": "J",
        "nodes": [{"name": "Start", "type": "Start1"}, {"name": "End", "type": "End1"}],
        "edges": [{"from": "Start", "to": "End"}],
    }
    spec = parse_graph_text(json.dumps(data), "json")
    assert spec.start_node_id == node_id_from_name("Start")
    again = from_json(data)
    assert (again.id, again.nodes, again.edges) == (spec.id, spec.nodes, spec.edges)


def test_full_form_edge_to_a_missing_node_loads_and_validation_reports_it(tmp_path):
    spec = readme_graph()
    ghost = uuid4()
    spec.edges.append(GraphEdge(source_id=spec.nodes[1].id, target_id=ghost))
    save_graph(spec, tmp_path / "g.json")
    loaded = load_graph(tmp_path / "g.json")
    assert [i.code for i in validate_graph(loaded)] == ["invalid_edge_target"]
    assert f"targets missing node {ghost}" in validate_graph(loaded)[0].message


# -- bad files ------------------------------------------------------------------------------


def load_text(tmp_path: Path, text: str, name: str = "bad.yaml") -> str:
    """The message of the GraphFileError raised when loading ``text`` as file ``name``."""
    path = tmp_path / name
    path.write_text(dedent(text), encoding="utf-8")
    with pytest.raises(GraphFileError) as caught:
        load_graph(path)
    assert isinstance(caught.value, ValueError)
    return str(caught.value).replace(str(tmp_path) + "/", "")


def test_yaml_syntax_error(tmp_path):
    text = """\
        name: x
        nodes:
          - name: Start
            type: Start1
           bad: [
        """
    assert load_text(tmp_path, text) == (
        "bad.yaml:5: invalid YAML: did not find expected '-' indicator (column 4), while "
        "parsing a block collection on line 3"
    )


def test_json_syntax_error(tmp_path):
    assert load_text(tmp_path, '{"nodes": [\n  1,\n', "bad.json") == (
        "bad.json:3: invalid JSON: Expecting value (column 1)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "bad.yaml: expected a mapping with 'nodes' and 'edges', got a list"),
        ("just text\n", "bad.yaml: expected a mapping with 'nodes' and 'edges', got a string"),
        ("", "bad.yaml: the file is empty; expected a graph (nodes, edges, ...)"),
        ("# only a comment\n", "bad.yaml: the file is empty; expected a graph (nodes, edges, ...)"),
    ],
)
def test_not_a_mapping(tmp_path, text, message):
    assert load_text(tmp_path, text) == message


def test_unknown_fields_everywhere(tmp_path):
    text = """\
        name: x
        nodes:
          - name: Start
            type: Start1
          - name: A
            type: Static1
            travers_in: AwaitAll
            position: {x: 1, z: 2}
        edges:
          - {from: Start, to: A, lable: x}
        colour: red
        """
    assert load_text(tmp_path, text).splitlines() == [
        "bad.yaml:7: nodes[1].travers_in: unknown field; did you mean 'traverse_in'?",
        "bad.yaml:8: nodes[1].position.z: unknown field",
        "bad.yaml:10: edges[0].lable: unknown field; did you mean 'label'?",
        "bad.yaml:11: colour: unknown field; expected one of: id, agent_id, name, start_node_id, "
        "nodes, edges, features, created_at, start",
    ]


def test_wrong_types_and_enum_values(tmp_path):
    text = """\
        name: x
        nodes:
          - name: Start
            type: Start1
          - name: A
            type: Static1
            traverse_in: Whenever
            max_retries: -1
            timeout: soon
            metadata: [not, a, mapping]
          - name: B
            type: 5
        edges:
          - {from: Start, to: A, is_main: maybe}
        """
    assert load_text(tmp_path, text).splitlines() == [
        "bad.yaml:7: nodes[1].traverse_in: Input should be 'AwaitAll' or 'AwaitFirst'",
        "bad.yaml:8: nodes[1].max_retries: Input should be greater than or equal to 0",
        "bad.yaml:9: nodes[1].timeout: Input should be a valid number, unable to parse string "
        "as a number",
        "bad.yaml:10: nodes[1].metadata: Input should be a valid dictionary",
        "bad.yaml:12: nodes[2].type: node type must be a non-empty string: a NodeType value "
        "such as 'Instruction1', or a custom type name; got 5",
        "bad.yaml:14: edges[0].is_main: Input should be a valid boolean, unable to interpret input",
    ]


def test_missing_start(tmp_path):
    text = """\
        name: x
        nodes:
          - {name: A, type: Static1}
        """
    assert load_text(tmp_path, text) == (
        "bad.yaml: start: missing: no node has type Start1; add one, or name the start node "
        "with 'start:'"
    )


def test_several_start_nodes_without_start(tmp_path):
    text = """\
        nodes:
          - {name: S1, type: Start1}
          - {name: S2, type: Start1}
        """
    assert load_text(tmp_path, text) == (
        "bad.yaml: start: the graph has 2 Start1 nodes ('S1', 'S2'); name the start node "
        "with 'start:'"
    )


def test_start_naming_a_missing_node(tmp_path):
    text = """\
        start: Begin
        nodes:
          - {name: Start, type: Start1}
        """
    assert load_text(tmp_path, text) == "bad.yaml:1: start: start refers to missing node 'Begin'"


def test_edge_to_a_missing_node_name(tmp_path):
    text = """\
        name: x
        nodes:
          - {name: Start, type: Start1}
          - {name: Classify, type: Static1}
        edges:
          - from: Start
            to: Classify
          - from: Classify
            to: Clasify
            label: billing
          - {from: Nowhere, to: Classify}
        """
    assert load_text(tmp_path, text).splitlines() == [
        "bad.yaml:9: edges[1].to: edge 'Classify' -[billing]-> 'Clasify' refers to missing node "
        "'Clasify'; did you mean 'Classify'?",
        "bad.yaml:11: edges[2].from: edge 'Nowhere' -> 'Classify' refers to missing node 'Nowhere'",
    ]


def test_duplicate_names_keys_and_edges(tmp_path):
    text = """\
        nodes:
          - {name: Start, type: Start1}
          - {name: A, type: Static1}
          - {name: A, type: Text1}
          - {type: Static1}
        edges:
          - {from: Start, to: A}
          - {from: Start, to: A}
          - {from: Start, source_id: 00000000-0000-0000-0000-000000000001, to: A, label: x}
          - {from: Start}
        """
    assert load_text(tmp_path, text).splitlines() == [
        "bad.yaml:4: nodes[2].name: duplicate node name 'A' (also nodes[1]); node names must be "
        "unique in a file that refers to nodes by name",
        "bad.yaml:5: nodes[3]: a node without 'id' needs a 'name' (its id is derived from "
        "the name)",
        "bad.yaml:8: edges[1]: edge 'Start' -> 'A' repeats edges[0] (same from, to and label); "
        "give one of them an 'id' to keep both",
        "bad.yaml:9: edges[2].from: give either 'from' or 'source_id', not both",
        "bad.yaml:10: edges[3].to: Field required",
    ]


def test_duplicate_yaml_key(tmp_path):
    text = """\
        nodes:
          - name: Start
            type: Start1
            type: End1
        """
    assert load_text(tmp_path, text) == (
        "bad.yaml:4: nodes[0].type: duplicate key 'type' (first on line 3)"
    )


def test_items_that_are_not_mappings(tmp_path):
    text = """\
        nodes:
          - {name: Start, type: Start1}
          - 7
        edges: {from: Start}
        """
    assert load_text(tmp_path, text).splitlines() == [
        "bad.yaml:3: nodes[1]: expected a mapping (a node), got an int",
        "bad.yaml:4: edges: expected a list, got a mapping",
    ]


def test_json_field_errors_have_the_field_path_but_no_line(tmp_path):
    text = json.dumps({"nodes": [{"name": "Start", "type": "Start1", "timeout": -1}]})
    assert load_text(tmp_path, text, "bad.json") == (
        "bad.json: nodes[0].timeout: Input should be greater than 0"
    )


def test_unknown_extension_missing_file_and_bad_encoding(tmp_path):
    with pytest.raises(
        GraphFileError, match=r"g\.txt: unknown extension; use \.json, \.yaml or \.yml$"
    ):
        load_graph(tmp_path / "g.txt")
    with pytest.raises(
        GraphFileError, match=r"missing\.yaml: cannot read: No such file or directory$"
    ):
        load_graph(tmp_path / "missing.yaml")
    (tmp_path / "latin.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(
        GraphFileError,
        match=r"latin\.yaml: not UTF-8 text \(invalid continuation byte at byte 9\)$",
    ):
        load_graph(tmp_path / "latin.yaml")
    with pytest.raises(GraphFileError, match=r"g\.toml: unknown extension"):
        save_graph(readme_graph(), tmp_path / "g.toml")


def test_parse_errors_name_the_source():
    with pytest.raises(GraphFileError) as caught:
        GraphSpec.from_yaml("nodes: 3\n", source="inline")
    assert str(caught.value).splitlines() == [
        "inline:1: nodes: expected a list, got an int",
        "inline: start: missing: no node has type Start1; add one, or name the start node with "
        "'start:'",
    ]
    assert caught.value.source == "inline"
    assert caught.value.problems[0].line == 1
    assert caught.value.problems[0].path == "nodes"


def test_a_queried_spec_still_equals_its_loaded_copy():
    spec = readme_graph()
    loaded = parse_graph_text(dump_graph_text(spec, "json"), "json")
    spec.get_node(spec.start_node_id)  # builds the spec's lookup index
    assert loaded == spec
