"""docs/nodes-std.md stays true: every node type documented with its keys and a valid
example, the left-out types listed with their reasons, the code example runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from qm_nodes_std import NODE_TYPES, NOT_PROVIDED, std_executors
from quartermaster_graph import GraphBuilder, GraphNode

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "nodes-std.md").read_text(encoding="utf-8")


def fenced(markdown: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", markdown, flags=re.M | re.S)


def section(node_type: str) -> str:
    match = re.search(rf"^##+ {node_type}\n(.*?)(?=^##)", DOC, flags=re.M | re.S)
    assert match is not None, f"docs/nodes-std.md has no section for {node_type}"
    return match.group(1)


def explained(node_type: str) -> str:
    """The text that explains a type: its section, and for memory nodes the shared intro."""
    text = section(node_type)
    if "Memory" in node_type:
        text += DOC.split("\n## Memory\n", 1)[1].split("\n### ", 1)[0]
    return text


def table_rows(header: str) -> dict[str, str]:
    text = DOC.split(f"\n{header}\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Za-z0-9]+)` \| (.*) \|$", text, flags=re.M)
    return dict(rows)


def test_the_python_example_runs() -> None:
    (example,) = fenced(DOC, "python")
    exec(compile(example, "docs/nodes-std.md", "exec"), {})


@pytest.mark.parametrize("node_type", NODE_TYPES)
def test_each_type_has_a_section_with_an_example_its_executor_accepts(node_type: str) -> None:
    (example,) = fenced(section(node_type), "yaml")
    (spec,) = yaml.safe_load(example)
    node = GraphNode(**spec)
    assert node.type_name == node_type
    executor = std_executors()[node_type]
    executor.plan(node)  # raises SettingsError on a bad example


# The builder method of each type and the arguments that make it write every key.
BUILDER_CALLS = {
    "Static1": ("static", ("N",)),
    "Text1": ("text", ("N",)),
    "Var1": ("var", ("N",)),
    "TextToVariable1": ("text_to_variable", ("N",)),
    "Comment1": ("comment", ("N",)),
    "Break1": ("break_node", ()),
    "If1": ("if_node", ("N",)),
    "Switch1": ("switch", ("N",)),
    "StaticDecision1": ("static_decision", ("N",)),
    "StaticMerge1": ("static_merge", ()),
    "WriteMemory1": ("write_memory", ("N",)),
    "UpdateMemory1": ("update_memory", ("N",)),
    "ReadMemory1": ("read_memory", ("N",)),
    "FlowMemory1": ("flow_memory", ()),
    "UserMemory1": ("user_memory", ()),
    "User1": ("user", ()),
    "UserDecision1": ("user_decision", ("N",)),
    "UserForm1": ("user_form", ("N",)),
    "SubAssistant1": ("sub_agent", ("N",)),
}


def test_the_table_lists_every_type_with_every_key_the_builder_writes() -> None:
    rows = table_rows("## Node types")
    assert list(rows) == list(NODE_TYPES)
    for node_type, (method, args) in BUILDER_CALLS.items():
        built = getattr(GraphBuilder("g").start(), method)(*args).nodes[-1]
        assert built.type_name == node_type
        keys_cell = rows[node_type].split(" | ")[1]
        for key in built.metadata:
            assert f"`{key}`" in keys_cell, (node_type, key)
            assert f"`{key}`" in explained(node_type), (node_type, key)


def test_the_types_left_out_are_listed_with_their_reasons() -> None:
    rows = table_rows("## Not provided")
    assert rows == NOT_PROVIDED
    assert not set(NOT_PROVIDED) & set(NODE_TYPES)
