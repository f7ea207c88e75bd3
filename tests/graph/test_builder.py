"""GraphBuilder: exact nodes and edges for every construct, node options, misuse."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from quartermaster_graph import (
    ErrorStrategy,
    Graph,
    GraphBuilder,
    GraphSpec,
    GraphValidationError,
    MessageType,
    NodeType,
    ThoughtType,
    TraverseIn,
    TraverseOut,
)


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


def by_name(spec: GraphSpec, name: str) -> Any:
    (node,) = [n for n in spec.nodes if n.name == name]
    return node


# -- the 0.1.5 README example ------------------------------------------------


def test_readme_example_has_one_end_per_branch_as_0_1_5_built_it(shape):
    spec = readme_graph()
    assert shape(spec) == (
        [
            ("Start", "Start1"),
            ("Classify", "Instruction1"),
            ("Route", "Decision1"),
            ("Handle billing", "Instruction1"),
            ("Handle technical", "Instruction1"),
            ("End", "End1"),
            ("End", "End1"),
        ],
        [
            ("Start", "", "Classify"),
            ("Classify", "", "Route"),
            ("Route", "billing", "Handle billing"),
            ("Route", "technical", "Handle technical"),
            ("Handle billing", "", "End"),
            ("Handle technical", "", "End"),
        ],
    )
    ends = [n.id for n in spec.nodes if n.type_name == "End1"]
    assert [e.target_id for e in spec.edges[-2:]] == ends


def test_readme_example_spec_fields():
    spec = readme_graph()
    assert spec.name == "Support Agent"
    assert spec.start_node_id == spec.nodes[0].id
    route = by_name(spec, "Route")
    assert route.traverse_out is TraverseOut.SPAWN_PICKED
    assert route.thought_type is ThoughtType.USE_PREVIOUS
    assert route.message_type is MessageType.VARIABLE
    assert route.metadata["options"] == ["billing", "technical"]
    assert route.metadata["llm_stream"] is False
    assert by_name(spec, "Classify").metadata["llm_model"] == "gpt-4o"
    ends = [n for n in spec.nodes if n.name == "End"]
    assert len(ends) == 2
    for end in ends:
        assert (end.type_name, end.traverse_out, end.thought_type, end.message_type) == (
            "End1",
            TraverseOut.SPAWN_NONE,
            ThoughtType.SKIP,
            MessageType.VARIABLE,
        )
    assert spec.validate() == []


def test_graph_is_a_graph_builder_that_adds_its_own_start():
    assert issubclass(Graph, GraphBuilder)
    assert [n.type_name for n in Graph("g").static("A").build().nodes] == [
        "Start1",
        "Static1",
        "End1",
    ]


# -- metadata and defaults each method writes ----------------------------------

LLM_DEFAULTS = {
    "llm_model": "",
    "llm_provider": "",
    "llm_temperature": 0.5,
    "llm_system_instruction": "",
    "llm_stream": True,
    "llm_max_output_tokens": 2048,
    "llm_max_input_tokens": 16385,
    "llm_vision": False,
    "llm_thinking_level": "off",
}
USE_PREVIOUS = {"thought_type": ThoughtType.USE_PREVIOUS, "message_type": MessageType.VARIABLE}
SKIPS = {"thought_type": ThoughtType.SKIP, "message_type": MessageType.VARIABLE}
PICKS = {"traverse_out": TraverseOut.SPAWN_PICKED, **USE_PREVIOUS}
ASSISTANT = {"message_type": MessageType.ASSISTANT}

# (method, args, kwargs, node type, metadata, GraphNode fields differing from the model defaults)
METHOD_CASES: list[
    tuple[str, tuple[Any, ...], dict[str, Any], str, dict[str, Any], dict[str, Any]]
] = [
    (
        "instruction",
        ("N",),
        {"model": "m", "provider": "p", "temperature": 0.1, "system_instruction": "s"},
        "Instruction1",
        {
            **LLM_DEFAULTS,
            "llm_model": "m",
            "llm_provider": "p",
            "llm_temperature": 0.1,
            "llm_system_instruction": "s",
        },
        ASSISTANT,
    ),
    (
        "summarize",
        ("N",),
        {},
        "Summarize1",
        {**LLM_DEFAULTS, "llm_system_instruction": "Summarize the given conversation concisely."},
        ASSISTANT,
    ),
    (
        "agent",
        ("N",),
        {"tools": ["t1"], "max_iterations": 5},
        "Agent1",
        {**LLM_DEFAULTS, "program_version_ids": ["t1"], "max_iterations": 5},
        ASSISTANT,
    ),
    (
        "vision",
        ("N",),
        {},
        "InstructionImageVision1",
        {**LLM_DEFAULTS, "llm_vision": True},
        ASSISTANT,
    ),
    (
        "merge",
        ("N",),
        {},
        "Merge1",
        {
            **LLM_DEFAULTS,
            "prefix_message": "Compress following conversations into one",
            "suffix_message": "",
        },
        {"traverse_in": TraverseIn.AWAIT_ALL, **ASSISTANT},
    ),
    (
        "static_merge",
        ("N",),
        {"text": "joined"},
        "StaticMerge1",
        {"static_text": "joined"},
        {"traverse_in": TraverseIn.AWAIT_ALL},
    ),
    ("static", ("N",), {"text": "hi"}, "Static1", {"static_text": "hi"}, {}),
    ("text", ("N",), {"template": "{{ input }}"}, "Text1", {"text": "{{ input }}"}, {}),
    (
        "var",
        ("N",),
        {"variable": "v", "expression": "1 + 1"},
        "Var1",
        {"name": "v", "expression": "1 + 1"},
        USE_PREVIOUS,
    ),
    (
        "text_to_variable",
        ("N",),
        {"variable": "v", "source": "s"},
        "TextToVariable1",
        {"variable": "v", "source": "s"},
        USE_PREVIOUS,
    ),
    (
        "code",
        ("N",),
        {"code": "x", "filename": "f.py"},
        "Code1",
        {"code": "x", "filename": "f.py"},
        SKIPS,
    ),
    (
        "program_runner",
        ("N",),
        {"program": "grep", "args": ["-r"]},
        "ProgramRunner1",
        {"program": "grep", "args": ["-r"]},
        {"message_type": MessageType.TOOL},
    ),
    (
        "break_node",
        (),
        {"targets": ["tools"]},
        "Break1",
        {"break_targets": ["tools"]},
        {"thought_type": ThoughtType.SKIP, "message_type": MessageType.SYSTEM},
    ),
    (
        "read_memory",
        ("N",),
        {"memory_name": "m", "variable_names": ["a"]},
        "ReadMemory1",
        {"memory_name": "m", "memory_type": "flow", "variable_names": ["a"]},
        USE_PREVIOUS,
    ),
    (
        "write_memory",
        ("N",),
        {
            "memory_name": "m",
            "memory_type": "user",
            "variables": [{"name": "a", "expression": "input"}],
        },
        "WriteMemory1",
        {
            "memory_name": "m",
            "memory_type": "user",
            "variables": [{"name": "a", "expression": "input"}],
        },
        USE_PREVIOUS,
    ),
    (
        "update_memory",
        ("N",),
        {"variables": [{"name": "a", "expression": "1"}]},
        "UpdateMemory1",
        {"memory_name": "", "memory_type": "flow", "variables": [{"name": "a", "expression": "1"}]},
        USE_PREVIOUS,
    ),
    (
        "flow_memory",
        (),
        {"memory_name": "m", "initial_data": [{"key": "a", "value": "1"}]},
        "FlowMemory1",
        {"memory_name": "m", "initial_data": [{"key": "a", "value": "1"}]},
        SKIPS,
    ),
    ("user_memory", (), {}, "UserMemory1", {"memory_name": "", "initial_data": []}, SKIPS),
    (
        "user",
        (),
        {"prompts": ["Your name?"]},
        "User1",
        {"text_snippets": ["Your name?"]},
        {"message_type": MessageType.USER},
    ),
    (
        "user_form",
        ("N",),
        {"parameters": [{"name": "email"}]},
        "UserForm1",
        {"parameters": [{"name": "email"}]},
        {"message_type": MessageType.USER},
    ),
    ("comment", ("N",), {"text": "why"}, "Comment1", {"comment": "why"}, SKIPS),
    (
        "sub_graph",
        ("N", "graphs/billing.yaml"),
        {},
        "SubAssistant1",
        {"graph": "graphs/billing.yaml"},
        ASSISTANT,
    ),
    (
        "sub_agent",
        ("N",),
        {"graph_id": "billing"},
        "SubAssistant1",
        {"graph": "billing", "sub_assistant_id": "billing"},
        ASSISTANT,
    ),
]


@pytest.mark.parametrize(
    ("method", "args", "kwargs", "node_type", "metadata", "fields"),
    METHOD_CASES,
    ids=[case[0] for case in METHOD_CASES],
)
def test_each_method_writes_its_type_metadata_and_defaults(
    method, args, kwargs, node_type, metadata, fields
):
    builder = GraphBuilder("g").start()
    getattr(builder, method)(*args, **kwargs)
    node = builder.nodes[-1]
    assert node.type_name == node_type
    assert node.metadata == metadata
    defaults = {
        "traverse_in": TraverseIn.AWAIT_FIRST,
        "traverse_out": TraverseOut.SPAWN_ALL,
        "thought_type": ThoughtType.NEW,
        "message_type": MessageType.AUTOMATIC,
    }
    assert {key: getattr(node, key) for key in defaults} == {**defaults, **fields}


@pytest.mark.parametrize(
    ("method", "args", "node_type", "metadata", "fields"),
    [
        (
            "decision",
            ("D",),
            "Decision1",
            {
                **LLM_DEFAULTS,
                "llm_stream": False,
                "prefix_message": "",
                "suffix_message": "",
                "options": [],
            },
            PICKS,
        ),
        (
            "static_decision",
            ("D", "len(input) > 3"),
            "StaticDecision1",
            {"expression": "len(input) > 3"},
            PICKS,
        ),
        (
            "user_decision",
            ("D",),
            "UserDecision1",
            {},
            {**PICKS, "traverse_in": TraverseIn.AWAIT_ALL},
        ),
        ("if_node", ("D", "x > 1"), "If1", {"if_expression": "x > 1"}, PICKS),
        (
            "switch",
            ("D", {"a": "x"}),
            "Switch1",
            {"cases": [{"label": "a", "expression": "x"}], "default": ""},
            PICKS,
        ),
    ],
)
def test_branching_methods_pick_one_successor(method, args, node_type, metadata, fields):
    builder = GraphBuilder("g").start()
    getattr(builder, method)(*args)
    node = builder.nodes[-1]
    assert node.type_name == node_type
    assert node.metadata == metadata
    assert {key: getattr(node, key) for key in fields} == fields


def test_start_node_defaults():
    start = GraphBuilder("g").start().nodes[0]
    assert (start.name, start.type_name, start.thought_type, start.message_type) == (
        "Start",
        "Start1",
        ThoughtType.SKIP,
        MessageType.VARIABLE,
    )


# -- node options and extra keyword arguments -----------------------------------


def test_node_options_set_graph_node_fields_from_enums_or_strings():
    builder = (
        GraphBuilder("g")
        .start()
        .instruction(
            "A",
            error_handling=ErrorStrategy.RETRY,
            max_retries=5,
            retry_delay=0.5,
            timeout=30.0,
            traverse_in="AwaitAll",
            traverse_out=TraverseOut.SPAWN_NONE,
            thought_type="InheritThought1",
            message_type="User",
        )
        .static("B", error_handling="Skip")
    )
    a, b = builder.nodes[1], builder.nodes[2]
    assert (a.error_handling, a.max_retries, a.retry_delay, a.timeout) == (
        ErrorStrategy.RETRY,
        5,
        0.5,
        30.0,
    )
    assert (a.traverse_in, a.traverse_out, a.thought_type, a.message_type) == (
        TraverseIn.AWAIT_ALL,
        TraverseOut.SPAWN_NONE,
        ThoughtType.INHERIT,
        MessageType.USER,
    )
    assert "error_handling" not in a.metadata
    assert "timeout" not in a.metadata
    assert b.error_handling is ErrorStrategy.SKIP
    assert b.metadata == {"static_text": ""}


def test_unknown_keyword_arguments_go_to_metadata():
    builder = GraphBuilder("g").start().static("S", "hi", show_output=False, tags=["x"])
    assert builder.nodes[-1].metadata == {"static_text": "hi", "show_output": False, "tags": ["x"]}


def test_llm_keyword_arguments_are_stored_as_llm_keys():
    builder = GraphBuilder("g").start().instruction("I", stream=False, max_output_tokens=10, seed=3)
    meta = builder.nodes[-1].metadata
    assert (meta["llm_stream"], meta["llm_max_output_tokens"], meta["seed"]) == (False, 10, 3)
    assert "stream" not in meta


def test_an_invalid_node_option_names_node_field_and_allowed_values():
    with pytest.raises(
        ValueError,
        match=r"^node 'A' \(Static1\): traverse_in: Input should be "
        r"'AwaitAll' or 'AwaitFirst'$",
    ):
        GraphBuilder("g").start().static("A", traverse_in="Sometimes")


# -- branches ---------------------------------------------------------------------


def test_nested_branches_inside_branches(shape):
    spec = (
        GraphBuilder("Nested")
        .start()
        .decision("Outer", options=["a", "b"])
        .on("a")
        .static("A1")
        .if_node("Inner", "len(input) > 10")
        .on("true")
        .static("Long")
        .end()
        .on("false")
        .static("Short")
        .end()
        .end()
        .on("b")
        .static("B1")
        .end()
        .build()
    )
    assert shape(spec) == (
        [
            ("Start", "Start1"),
            ("Outer", "Decision1"),
            ("A1", "Static1"),
            ("Inner", "If1"),
            ("Long", "Static1"),
            ("Short", "Static1"),
            ("B1", "Static1"),
            ("End", "End1"),
            ("End", "End1"),
            ("End", "End1"),
        ],
        [
            ("Start", "", "Outer"),
            ("Outer", "a", "A1"),
            ("A1", "", "Inner"),
            ("Inner", "true", "Long"),
            ("Inner", "false", "Short"),
            ("Outer", "b", "B1"),
            ("Long", "", "End"),
            ("Short", "", "End"),
            ("B1", "", "End"),
        ],
    )


def test_nested_branch_ends_converge_on_the_next_node_of_the_branch(shape):
    spec = (
        GraphBuilder("g")
        .start()
        .decision("D", options=["x", "y"])
        .on("x")
        .if_node("If", "True")
        .on("true")
        .static("T")
        .end()
        .on("false")
        .static("F")
        .end()
        .static("After if")
        .end()
        .on("y")
        .static("Y")
        .end()
        .static("Joined")
        .end()
        .build()
    )
    assert shape(spec)[1] == [
        ("Start", "", "D"),
        ("D", "x", "If"),
        ("If", "true", "T"),
        ("If", "false", "F"),
        ("T", "", "After if"),
        ("F", "", "After if"),
        ("D", "y", "Y"),
        ("After if", "", "Joined"),
        ("Y", "", "Joined"),
        ("Joined", "", "End"),
    ]


def test_an_empty_branch_connects_the_decision_to_what_follows(shape):
    spec = (
        GraphBuilder("g")
        .start()
        .if_node("Check", "input")
        .on("true")
        .static("Yes")
        .end()
        .on("false")
        .end()
        .static("Done")
        .end()
        .build()
    )
    assert shape(spec)[1] == [
        ("Start", "", "Check"),
        ("Check", "true", "Yes"),
        ("Yes", "", "Done"),
        ("Check", "false", "Done"),
        ("Done", "", "End"),
    ]


def test_parallel_branches_merge(shape):
    spec = (
        GraphBuilder("Review")
        .start()
        .static("Diff")
        .parallel()
        .branch()
        .static("Security")
        .end()
        .branch()
        .static("Style")
        .end()
        .branch()
        .static("Tests")
        .end()
        .static_merge("Join")
        .end()
        .build()
    )
    assert shape(spec) == (
        [
            ("Start", "Start1"),
            ("Diff", "Static1"),
            ("Security", "Static1"),
            ("Style", "Static1"),
            ("Tests", "Static1"),
            ("Join", "StaticMerge1"),
            ("End", "End1"),
        ],
        [
            ("Start", "", "Diff"),
            ("Diff", "", "Security"),
            ("Diff", "", "Style"),
            ("Diff", "", "Tests"),
            ("Security", "", "Join"),
            ("Style", "", "Join"),
            ("Tests", "", "Join"),
            ("Join", "", "End"),
        ],
    )
    assert by_name(spec, "Join").traverse_in is TraverseIn.AWAIT_ALL
    assert by_name(spec, "Diff").traverse_out is TraverseOut.SPAWN_ALL


def test_parallel_inside_a_decision_branch_with_llm_merge(shape):
    spec = (
        GraphBuilder("g")
        .start()
        .decision("D", options=["deep", "quick"])
        .on("deep")
        .static("Fan")
        .parallel()
        .branch()
        .instruction("P1")
        .end()
        .branch()
        .instruction("P2")
        .end()
        .merge("Combine")
        .end()
        .on("quick")
        .static("Q")
        .end()
        .build()
    )
    assert shape(spec)[1] == [
        ("Start", "", "D"),
        ("D", "deep", "Fan"),
        ("Fan", "", "P1"),
        ("Fan", "", "P2"),
        ("P1", "", "Combine"),
        ("P2", "", "Combine"),
        ("D", "quick", "Q"),
        ("Combine", "", "End"),
        ("Q", "", "End"),
    ]


def test_switch_cases_forms_and_branches(shape):
    as_dict = GraphBuilder("g").start().switch("S", {"a": "x == 1", "b": "x == 2"}, default="c")
    as_list = (
        GraphBuilder("g")
        .start()
        .switch(
            "S",
            [{"label": "a", "expression": "x == 1"}, {"label": "b", "expression": "x == 2"}],
            "c",
        )
    )
    as_015 = (
        GraphBuilder("g")
        .start()
        .switch(
            "S",
            [{"expression": "x == 1", "edge_id": "a"}, {"expression": "x == 2", "edge_id": "b"}],
            default_edge_id="c",
        )
    )
    expected = {
        "cases": [{"label": "a", "expression": "x == 1"}, {"label": "b", "expression": "x == 2"}],
        "default": "c",
    }
    for builder in (as_dict, as_list, as_015):
        assert builder.nodes[-1].metadata == expected
    spec = (
        as_dict.on("a")
        .static("A")
        .end()
        .on("b")
        .static("B")
        .end()
        .on("c")
        .static("C")
        .end()
        .build()
    )
    assert shape(spec)[1] == [
        ("Start", "", "S"),
        ("S", "a", "A"),
        ("S", "b", "B"),
        ("S", "c", "C"),
        ("A", "", "End"),
        ("B", "", "End"),
        ("C", "", "End"),
    ]


def test_switch_rejects_a_case_that_is_not_a_mapping():
    with pytest.raises(
        ValueError,
        match=r"^switch case 1 must be a mapping with 'label' and "
        r"'expression', got 'x == 2'$",
    ):
        GraphBuilder("g").start().switch("S", [{"label": "a", "expression": "1"}, "x == 2"])


def test_if_node_metadata_and_branches(shape):
    spec = (
        GraphBuilder("g")
        .start()
        .if_node("Big?", "len(input) > 100")
        .on("true")
        .summarize("Shorten")
        .end()
        .on("false")
        .static("Keep")
        .end()
        .build()
    )
    assert by_name(spec, "Big?").metadata == {"if_expression": "len(input) > 100"}
    assert shape(spec)[1][1:3] == [("Big?", "true", "Shorten"), ("Big?", "false", "Keep")]


def test_a_linear_chain_without_end_gets_one(shape):
    spec = GraphBuilder("g").start().static("A").build()
    assert shape(spec) == (
        [("Start", "Start1"), ("A", "Static1"), ("End", "End1")],
        [("Start", "", "A"), ("A", "", "End")],
    )


def test_end_is_shared_when_called_again_after_connect(shape):
    builder = GraphBuilder("g").start().static("A").end()
    spec = builder.connect("Start", "End", "").build(validate=False)
    assert shape(spec)[1] == [("Start", "", "A"), ("A", "", "End"), ("Start", "", "End")]
    assert [n.name for n in spec.nodes].count("End") == 1


# -- use, node, connect, edge ------------------------------------------------------


def sub_spec() -> GraphSpec:
    return (
        GraphBuilder("Sub")
        .start()
        .static("S1")
        .if_node("S-If", "x")
        .on("true")
        .static("S-T")
        .end()
        .on("false")
        .static("S-F")
        .end()
        .build()
    )


def test_use_inlines_a_spec_without_start_and_end_with_fresh_ids(shape):
    sub = sub_spec()
    spec = GraphBuilder("Main").start().static("Before").use(sub).static("After").end().build()
    assert shape(spec) == (
        [
            ("Start", "Start1"),
            ("Before", "Static1"),
            ("S1", "Static1"),
            ("S-If", "If1"),
            ("S-T", "Static1"),
            ("S-F", "Static1"),
            ("After", "Static1"),
            ("End", "End1"),
        ],
        [
            ("Start", "", "Before"),
            ("Before", "", "S1"),
            ("S1", "", "S-If"),
            ("S-If", "true", "S-T"),
            ("S-If", "false", "S-F"),
            ("S-T", "", "After"),
            ("S-F", "", "After"),
            ("After", "", "End"),
        ],
    )
    sub_ids = {n.id for n in sub.nodes}
    assert not sub_ids & {n.id for n in spec.nodes}
    assert by_name(spec, "S-If").metadata == {"if_expression": "x"}


def test_use_a_builder_in_a_branch_labels_the_entry_edge(shape):
    sub = GraphBuilder("Sub").start().static("X1").static("X2")  # not built, no End
    spec = (
        GraphBuilder("Main")
        .start()
        .decision("D", options=["x", "y"])
        .on("x")
        .use(sub)
        .end()
        .on("y")
        .static("Y")
        .end()
        .build()
    )
    assert shape(spec)[1] == [
        ("Start", "", "D"),
        ("D", "x", "X1"),
        ("X1", "", "X2"),
        ("D", "y", "Y"),
        ("X2", "", "End"),
        ("Y", "", "End"),
    ]
    assert len(sub.nodes) == 3  # the inlined builder is left as it was


def test_use_the_same_graph_twice_gives_distinct_nodes():
    sub = GraphBuilder("Sub").start().static("X").end().build()
    spec = GraphBuilder("Main").start().use(sub).use(sub).build()
    xs = [n for n in spec.nodes if n.name == "X"]
    assert len(xs) == 2
    assert xs[0].id != xs[1].id


def test_custom_node_types_and_node_fields(shape):
    node_id = uuid4()
    spec = (
        GraphBuilder("g")
        .start()
        .node(
            "acme.Classifier",
            "Classify",
            metadata={"labels": ["a", "b"]},
            id=node_id,
            timeout=5,
            traverse_out="SpawnPickedNode",
            threshold=0.7,
        )
        .on("a")
        .static("A")
        .end()
        .on("b")
        .static("B")
        .end()
        .build()
    )
    classify = spec.get_node(node_id)
    assert classify is not None
    assert (classify.type, classify.timeout) == ("acme.Classifier", 5.0)
    assert classify.metadata == {"labels": ["a", "b"], "threshold": 0.7}
    assert shape(spec)[1][1:3] == [("Classify", "a", "A"), ("Classify", "b", "B")]


def test_node_with_a_known_type_gets_that_types_defaults():
    node = GraphBuilder("g").start().node(NodeType.MERGE, "M").nodes[-1]
    assert (node.type, node.traverse_in, node.message_type) == (
        NodeType.MERGE,
        TraverseIn.AWAIT_ALL,
        MessageType.ASSISTANT,
    )


def test_connect_by_name_adds_a_loop(shape):
    spec = (
        GraphBuilder("Loop")
        .start()
        .user("Ask")
        .if_node("Done?", "'bye' in input")
        .on("true")
        .end()
        .on("false")
        .static("Again")
        .connect("Again", "Ask")
        .end()
        .build(validate=False)
    )
    assert ("Again", "", "Ask") in shape(spec)[1]


def test_connect_errors_name_the_missing_or_ambiguous_node():
    builder = GraphBuilder("g").start().static("Answer").static("Answer")
    with pytest.raises(
        ValueError,
        match=r"^connect\(\): graph 'g' has no node named 'Anwser'; "
        r"did you mean 'Answer'\?$",
    ):
        builder.connect("Start", "Anwser")
    with pytest.raises(
        ValueError,
        match=r"^connect\(\): 2 nodes of graph 'g' are named 'Answer' "
        r"\(ids .*\); use edge\(source_id, target_id\)$",
    ):
        builder.connect("Start", "Answer")


def test_edge_adds_an_edge_by_ids():
    builder = GraphBuilder("g").start().static("A")
    start, a = builder.nodes
    builder.edge(a.id, start.id, label="back", is_main=False)
    last = builder.edges[-1]
    assert (last.source_id, last.target_id, last.label, last.is_main) == (
        a.id,
        start.id,
        "back",
        False,
    )


# -- build and validation --------------------------------------------------------


def test_build_raises_listing_every_error_at_once():
    builder = (
        GraphBuilder("Broken")
        .start()
        .decision("Route", options=["a"])
        .on("a")
        .static("A")
        .end()
        .on("a")
        .static("B")
        .end()
        .on("a")
        .switch("Pick")
        .end()
    )
    with pytest.raises(GraphValidationError) as caught:
        builder.build()
    error = caught.value
    assert [i.code for i in error.errors] == ["picked-edge-duplicate-label"] * 2
    assert [i.code for i in error.warnings] == ["picked-too-few-edges"]
    lines = str(error).splitlines()
    assert lines[0] == "graph 'Broken' has 2 errors:"
    assert len(lines) == 3
    assert all(
        line.startswith("  error [picked-edge-duplicate-label] edge 'Route' -[a]->")
        for line in lines[1:]
    )


def test_build_without_validation_returns_the_invalid_graph():
    spec = GraphBuilder("g").start().switch("Pick").build(validate=False)
    assert [n.name for n in spec.nodes] == ["Start", "Pick"]


def test_build_twice_gives_the_same_nodes():
    builder = GraphBuilder("g").start().static("A")
    first, second = builder.build(), builder.build()
    assert [n.id for n in first.nodes] == [n.id for n in second.nodes]
    assert len(first.edges) == len(second.edges) == 2


def test_to_agent_returns_the_0_1_5_agent_record():
    agent = GraphBuilder("Helper", description="helps").start().static("A").to_agent()
    assert (agent.name, agent.description) == ("Helper", "helps")


# -- misuse -------------------------------------------------------------------------


def test_build_without_start():
    with pytest.raises(ValueError, match=r"^graph 'g' has no start node: call \.start\(\) first$"):
        GraphBuilder("g").build()


def test_start_twice():
    with pytest.raises(ValueError, match=r"^start\(\) called twice"):
        GraphBuilder("g").start().start()


def test_on_without_a_decision():
    with pytest.raises(ValueError, match=r"^on\('x'\) in graph 'g': it must follow decision\(\)"):
        GraphBuilder("g").start().static("A").on("x")


def test_on_after_parallel():
    with pytest.raises(ValueError, match=r"after parallel\(\) start branches with \.branch\(\)$"):
        GraphBuilder("g").start().static("A").parallel().on("x")


def test_on_with_an_empty_label():
    with pytest.raises(ValueError, match=r"^on\(\) needs a non-empty label, got ''$"):
        GraphBuilder("g").start().if_node("If", "x").on("")


def test_branch_without_parallel():
    with pytest.raises(ValueError, match=r"^branch\(\) in graph 'g' must follow parallel\(\)"):
        GraphBuilder("g").start().if_node("If", "x").branch()


def test_parallel_without_a_node_to_fan_out_from():
    with pytest.raises(
        ValueError, match=r"^parallel\(\) in graph 'g' needs a node to fan out from"
    ):
        GraphBuilder("g").start().if_node("If", "x").parallel()


def test_a_node_after_a_decision_needs_a_branch():
    with pytest.raises(
        ValueError,
        match=r"^cannot add 'A' \(Static1\) to graph 'g': it would have no incoming edge; "
        r"after 'D' \(Decision1\) start each branch with \.on\(label\)$",
    ):
        GraphBuilder("g").start().decision("D").static("A")


def test_a_node_after_parallel_needs_a_branch():
    with pytest.raises(
        ValueError,
        match=r"after parallel\(\) at 'A' \(Static1\) start each "
        r"branch with \.branch\(\)$",
    ):
        GraphBuilder("g").start().static("A").parallel().static("B")


def test_a_node_after_end():
    with pytest.raises(ValueError, match=r"the graph already ended with \.end\(\)"):
        GraphBuilder("g").start().end().static("A")


def test_build_inside_a_branch():
    with pytest.raises(
        ValueError,
        match=r"^build\(\) called inside branch 'x' of 'If' \(If1\) in "
        r"graph 'g': close it with \.end\(\) first$",
    ):
        GraphBuilder("g").start().if_node("If", "c").on("x").static("A").build()


def test_an_unclosed_branch_fails_build():
    builder = GraphBuilder("g").start().if_node("If", "c")
    builder.on("true").static("A")
    with pytest.raises(
        ValueError,
        match=r"^branch 'true' of 'If' \(If1\) in graph 'g' was never "
        r"closed with \.end\(\)$",
    ):
        builder.build()


def test_a_closed_branch_takes_no_more_nodes():
    builder = GraphBuilder("g").start().if_node("If", "c")
    branch = builder.on("true").static("A")
    branch.end()
    with pytest.raises(
        ValueError,
        match=r"^branch 'true' of 'If' \(If1\) in graph 'g' was "
        r"already closed with \.end\(\)$",
    ):
        branch.static("B")


def test_duplicate_node_id():
    node_id = uuid4()
    builder = GraphBuilder("g").start().node("x.Custom", "A", id=node_id)
    with pytest.raises(ValueError, match=r"^node 'B' has the same id as 'A'"):
        builder.node("x.Custom", "B", id=node_id)


# -- size -------------------------------------------------------------------------------


def test_a_100000_node_chain_builds_and_validates():
    builder = GraphBuilder("Long").start()
    for index in range(100_000):
        builder.static(f"step {index}", "x")
    spec = builder.build()
    assert len(spec.nodes) == 100_002
    assert len(spec.edges) == 100_001
    assert isinstance(spec.nodes[-1].id, UUID)


def test_a_graph_cannot_use_itself():
    builder = GraphBuilder("g").start().static("A")
    with pytest.raises(ValueError, match=r"^use\(\): graph 'g' cannot inline itself$"):
        builder.use(builder)


def test_sub_graph_accepts_a_path():
    node = GraphBuilder("g").start().sub_graph("Billing", Path("graphs") / "billing.yaml").nodes[-1]
    assert node.metadata == {"graph": "graphs/billing.yaml"}


def test_start_and_end_take_node_options():
    spec = (
        GraphBuilder("g").start(timeout=5).static("A").end(error_handling="Skip", note="x").build()
    )
    start, end = spec.nodes[0], spec.nodes[-1]
    assert start.timeout == 5.0
    assert (end.name, end.error_handling.value, end.metadata) == ("End", "Skip", {"note": "x"})


def test_end_twice_and_nodes_after_end():
    builder = GraphBuilder("g").start().if_node("If", "c").on("true").static("T").end()
    builder.end()
    with pytest.raises(ValueError, match=r"^end\(\) in graph 'g': nothing to connect to End"):
        builder.end(timeout=3)
    branchy = GraphBuilder("h").start().static("A").end()
    branchy.connect("Start", "A", "again")
    with pytest.raises(ValueError, match=r"the graph already ended with \.end\(\)"):
        branchy.static("B")
