"""quartermaster-graph 0.1.5's documented API that lives on here: the serialization
module path, templates, typed metadata schemas, builder queries and names, 0.1.5's
validation codes, per-branch End nodes and builder positions."""

from __future__ import annotations

from uuid import uuid4

import pytest
from pydantic import ValidationError as PydanticValidationError

from quartermaster_graph import (
    GraphBuilder,
    GraphEdge,
    GraphNode,
    GraphSpec,
    NodePosition,
    NodeType,
    files,
    validate_graph,
)
from quartermaster_graph import serialization as ser
from quartermaster_graph.builder import BranchBuilder, _BranchBuilder
from quartermaster_graph.metadata import (
    METADATA_SCHEMAS,
    AgentMetadata,
    DecisionMetadata,
    InstructionMetadata,
    SwitchMetadata,
    get_metadata_class,
    validate_metadata,
)
from quartermaster_graph.templates import Templates
from quartermaster_graph.traversal import get_start_node


def test_serialization_is_the_files_functions_under_0_1_5s_path():
    assert (ser.to_json, ser.from_json, ser.to_yaml, ser.from_yaml, ser.json_schema) == (
        files.to_json,
        files.from_json,
        files.to_yaml,
        files.from_yaml,
        files.json_schema,
    )
    spec = Templates.simple_chat()
    assert ser.from_yaml(ser.to_yaml(spec)) == spec
    assert ser.from_json(ser.to_json(spec)) == spec


def test_branch_builder_has_its_0_1_5_name():
    assert _BranchBuilder is BranchBuilder


def test_builder_queries_before_build():
    builder = GraphBuilder("G").start().static("A").static("B")
    start, a, b = builder.nodes
    assert builder.start_node_id == start.id
    assert builder.get_node(a.id) is a
    assert builder.get_node(uuid4()) is None
    assert builder.get_successors(a.id) == [b]
    assert [(e.source_id, e.target_id) for e in builder.get_edges_from(a.id)] == [(a.id, b.id)]
    assert builder.get_edges_from(b.id) == []


def test_start_node_id_before_start_names_the_graph():
    with pytest.raises(
        ValueError, match=r"^No start node in graph 'Empty': call \.start\(\) first$"
    ):
        _ = GraphBuilder("Empty").start_node_id


def test_builder_lays_nodes_out_in_a_column_and_keeps_given_positions():
    spec = (
        GraphBuilder("G")
        .start()
        .static("A")
        .node("Static1", "B", position=NodePosition(x=5, y=7))
        .end()
        .build()
    )
    assert [(n.name, n.position) for n in spec.nodes] == [
        ("Start", NodePosition(x=0, y=0)),
        ("A", NodePosition(x=0, y=120)),
        ("B", NodePosition(x=5, y=7)),
        ("End", NodePosition(x=0, y=360)),
    ]


def test_each_dangling_branch_gets_its_own_end_and_an_explicit_end_is_shared(shape):
    def three_way(explicit_end: bool) -> GraphSpec:
        builder = GraphBuilder("Three Way").start().decision("Route?", options=["A", "B", "C"])
        for option in "ABC":
            builder.on(option).static(f"Route {option}").end()
        return (builder.end() if explicit_end else builder).build()

    own = three_way(explicit_end=False)
    assert [n.type_name for n in own.nodes].count("End1") == 3
    ends = {e.target_id for e in own.edges if own.get_node(e.target_id).type_name == "End1"}
    assert len(ends) == 3
    assert validate_graph(own) == []
    shared = three_way(explicit_end=True)
    assert [n.type_name for n in shared.nodes].count("End1") == 1
    assert shape(shared)[1][-3:] == [
        ("Route A", "", "End"),
        ("Route B", "", "End"),
        ("Route C", "", "End"),
    ]


def test_a_chain_left_open_still_ends_in_one_end_node(shape):
    spec = GraphBuilder("G").start().static("X").build(validate=False)
    assert shape(spec) == (
        [("Start", "Start1"), ("X", "Static1"), ("End", "End1")],
        [("Start", "", "X"), ("X", "", "End")],
    )


def test_validation_reports_0_1_5_codes_for_problems_0_1_5_reported():
    start, other = GraphNode(type=NodeType.START, name="S"), GraphNode(type="Static1", name="X")
    orphan = GraphNode(type="Static1", name="Orphan")
    ghost = uuid4()
    spec = GraphSpec(
        name="G",
        start_node_id=ghost,
        nodes=[other, orphan],
        edges=[GraphEdge(source_id=ghost, target_id=other.id)],
    )
    assert [(i.code, i.severity) for i in validate_graph(spec)] == [
        ("no_start", "error"),
        ("invalid_start_id", "error"),
        ("invalid_edge_source", "error"),
    ]
    two_starts = GraphSpec(
        name="G",
        start_node_id=start.id,
        nodes=[start, GraphNode(type=NodeType.START, name="S2"), orphan],
        edges=[GraphEdge(source_id=start.id, target_id=uuid4())],
    )
    assert [i.code for i in validate_graph(two_starts)] == [
        "multiple_starts",
        "invalid_edge_target",
        "orphan_node",
        "orphan_node",
    ]


def test_get_start_node_message_begins_as_0_1_5s():
    spec = GraphSpec(name="G", start_node_id=uuid4(), nodes=[], edges=[])
    with pytest.raises(ValueError, match=r"^No start node: start_node_id "):
        get_start_node(spec)


def test_templates_build_valid_graphs_of_the_documented_shape(shape):
    for spec in (
        Templates.simple_chat(),
        Templates.decision_tree(),
        Templates.multi_step(),
        Templates.parallel_processing(),
        Templates.multi_agent_supervisor(),
    ):
        assert validate_graph(spec) == []
    assert shape(Templates.simple_chat(model="m")) == (
        [
            ("Start", "Start1"),
            ("Process", "Instruction1"),
            ("User Input", "User1"),
            ("End", "End1"),
        ],
        [("Start", "", "Process"), ("Process", "", "User Input"), ("User Input", "", "End")],
    )
    assert shape(Templates.parallel_processing(branches=["X", "Y"])) == (
        [
            ("Start", "Start1"),
            ("X", "Instruction1"),
            ("Y", "Instruction1"),
            ("Merge", "StaticMerge1"),
            ("End", "End1"),
        ],
        [
            ("Start", "", "X"),
            ("Start", "", "Y"),
            ("X", "", "Merge"),
            ("Y", "", "Merge"),
            ("Merge", "", "End"),
        ],
    )
    supervisor = Templates.multi_agent_supervisor(worker_names=["Analyst", "Reporter"])
    assert shape(supervisor)[1][2:4] == [
        ("Assign to", "Analyst", "Analyst"),
        ("Assign to", "Reporter", "Reporter"),
    ]
    tree = Templates.decision_tree(options=["A", "B", "C"])
    assert [n.type_name for n in tree.nodes].count("End1") == 3


def test_metadata_schemas_read_what_the_builder_writes():
    spec = (
        GraphBuilder("G")
        .start()
        .agent("Helper", model="m", tools=["search"], max_iterations=3)
        .decision("Pick", options=["a", "b"], prefix_message="Choose")
        .on("a")
        .switch("S", cases={"x": "input == 'x'"}, default="x")
        .on("x")
        .end()
        .end()
        .on("b")
        .end()
        .build()
    )
    typed = {n.name: validate_metadata(n.type, n.metadata) for n in spec.nodes}
    assert typed["Start"] is None
    agent = typed["Helper"]
    assert isinstance(agent, AgentMetadata)
    assert (agent.llm_model, agent.program_version_ids, agent.max_iterations) == (
        "m",
        ["search"],
        3,
    )
    pick = typed["Pick"]
    assert isinstance(pick, DecisionMetadata)
    assert (pick.options, pick.prefix_message, pick.llm_stream) == (["a", "b"], "Choose", False)
    switch = typed["S"]
    assert isinstance(switch, SwitchMetadata)
    assert switch.cases == [{"label": "x", "expression": "input == 'x'"}]


def test_metadata_defaults_unknown_keys_and_errors():
    assert get_metadata_class("Instruction1") is InstructionMetadata
    assert get_metadata_class(NodeType.END) is None
    assert get_metadata_class("acme.Custom") is None
    plain = validate_metadata(NodeType.INSTRUCTION, {"mine": 1})
    assert plain == InstructionMetadata()
    assert (plain.llm_model, plain.llm_temperature, plain.llm_max_output_tokens) == ("", 0.5, 2048)
    with pytest.raises(PydanticValidationError, match="llm_temperature"):
        validate_metadata(NodeType.INSTRUCTION, {"llm_temperature": "hot"})
    assert all(isinstance(k, str) and k.endswith("1") for k in METADATA_SCHEMAS)
