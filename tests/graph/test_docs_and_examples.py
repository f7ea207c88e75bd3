"""The docs and examples of this part stay true: documented codes, keys and files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from quartermaster_graph import GraphBuilder, load_graph, parse_graph_text, validate_graph
from quartermaster_graph.validation import ISSUE_CODES

ROOT = Path(__file__).resolve().parents[2]
GRAPH_FILES = (ROOT / "docs" / "graph-files.md").read_text(encoding="utf-8")
BUILDER = (ROOT / "docs" / "builder.md").read_text(encoding="utf-8")


def fenced(markdown: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", markdown, flags=re.M | re.S)


def test_every_validation_code_is_documented_with_its_severity():
    rows = dict(re.findall(r"^\| `([a-z_-]+)` \| (error|warning) \|", GRAPH_FILES, flags=re.M))
    assert rows == ISSUE_CODES


def test_the_hand_written_example_in_the_docs_loads_and_is_valid(shape):
    (example,) = fenced(GRAPH_FILES, "yaml")
    spec = parse_graph_text(example, "yaml", "docs/graph-files.md")
    assert validate_graph(spec) == []
    assert shape(spec)[1] == [
        ("Start", "", "Ask"),
        ("Ask", "", "Polite"),
        ("Polite", "true", "Thanks"),
        ("Polite", "false", "Hint"),
        ("Thanks", "", "End"),
        ("Hint", "", "Ask"),
    ]


def test_the_builder_docs_example_runs():
    (example,) = fenced(BUILDER, "python")
    exec(compile(example, "docs/builder.md", "exec"), {})


def method_rows() -> dict[str, str]:
    return dict(re.findall(r"^\| `([a-z_]+)\(.*?\)` \| (.*)$", BUILDER, flags=re.M))


@pytest.mark.parametrize(
    ("call", "args"),
    [
        ("instruction", ("N",)),
        ("summarize", ("N",)),
        ("agent", ()),
        ("vision", ("N",)),
        ("decision", ("N",)),
        ("static_decision", ("N",)),
        ("user_decision", ("N",)),
        ("if_node", ("N",)),
        ("switch", ("N",)),
        ("merge", ()),
        ("static_merge", ()),
        ("break_node", ()),
        ("user", ()),
        ("user_form", ("N",)),
        ("static", ("N",)),
        ("text", ("N",)),
        ("var", ("N",)),
        ("text_to_variable", ("N",)),
        ("code", ("N",)),
        ("program_runner", ("N",)),
        ("read_memory", ("N",)),
        ("write_memory", ("N",)),
        ("update_memory", ("N",)),
        ("flow_memory", ()),
        ("user_memory", ()),
        ("comment", ("N",)),
        ("sub_graph", ("N", "other.yaml")),
        ("sub_agent", ("N",)),
    ],
)
def test_builder_docs_name_the_type_and_every_metadata_key_of_each_method(call, args):
    row = method_rows()[call]
    node = getattr(GraphBuilder("g").start(), call)(*args).nodes[-1]
    documented_type = row.split(" | ")[0]
    assert documented_type == node.type_name
    for key in node.metadata:
        if key.startswith("llm_"):
            assert "LLM keys" in row
        else:
            assert f"`{key}`" in row, key


def test_ticket_router_example(shape):
    spec = load_graph(ROOT / "examples" / "ticket-router.yaml")
    assert validate_graph(spec) == []
    nodes, edges = shape(spec)
    assert nodes == [
        ("Start", "Start1"),
        ("Remember ticket", "WriteMemory1"),
        ("Urgent?", "If1"),
        ("Urgent reply", "Text1"),
        ("Classify", "Switch1"),
        ("Billing reply", "Static1"),
        ("Outage reply", "Text1"),
        ("General reply", "Text1"),
        ("Remember reply", "WriteMemory1"),
        ("End", "End1"),
    ]
    assert [e for e in edges if e[0] == "Classify"] == [
        ("Classify", "billing", "Billing reply"),
        ("Classify", "outage", "Outage reply"),
        ("Classify", "general", "General reply"),
    ]
    assert [e for e in edges if e[0] == "Urgent?"] == [
        ("Urgent?", "true", "Urgent reply"),
        ("Urgent?", "false", "Classify"),
    ]
    classify = spec.nodes[4]
    assert classify.metadata["default"] == "general"
    assert [case["label"] for case in classify.metadata["cases"]] == ["billing", "outage"]


def test_parallel_review_example(shape):
    spec = load_graph(ROOT / "examples" / "parallel-review.yaml")
    assert validate_graph(spec) == []
    nodes, edges = shape(spec)
    reviewers = ["Security review", "Style review", "Tests review"]
    assert nodes == [
        ("Start", "Start1"),
        ("Security review", "Text1"),
        ("Style review", "Text1"),
        ("Tests review", "Static1"),
        ("Collect reviews", "StaticMerge1"),
        ("End", "End1"),
    ]
    assert edges == [
        *(("Start", "", r) for r in reviewers),
        *((r, "", "Collect reviews") for r in reviewers),
        ("Collect reviews", "", "End"),
    ]
    merge = spec.nodes[4]
    assert (merge.type_name, merge.traverse_in.value) == ("StaticMerge1", "AwaitAll")
