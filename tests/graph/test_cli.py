"""``qm validate`` and ``qm show``: through click's CliRunner and the installed script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from textwrap import dedent
from uuid import UUID

import pytest
from click.testing import CliRunner

from quartermaster_engine.cli import main
from quartermaster_graph import GraphBuilder, save_graph
from quartermaster_graph.files import node_id_from_name

VALID = """\
name: Small
nodes:
  - {name: Start, type: Start1}
  - name: Ask
    type: Instruction1
    error_handling: Retry
    max_retries: 2
    timeout: 30
    metadata: {llm_model: gpt-4o, llm_temperature: 0.2}
  - name: Route
    type: Switch1
    metadata:
      cases: [{label: short, expression: len(input) < 20}]
      default: long
  - {name: Short, type: Static1, metadata: {static_text: Brief.}}
  - {name: Long, type: Text1, metadata: {text: "{{ input }}"}}
  - {name: End, type: End1}
edges:
  - {from: Start, to: Ask}
  - {from: Ask, to: Route}
  - {from: Route, to: Short, label: short}
  - {from: Route, to: Long, label: long}
  - {from: Short, to: End}
  - {from: Long, to: End}
"""

WARNINGS_ONLY = """\
nodes:
  - {name: Start, type: Start1}
  - {name: End, type: End1}
  - {name: Orphan, type: Static1}
edges:
  - {from: Start, to: End}
"""

DANGLING = """\
name: Router
nodes:
  - {name: Start, type: Start1}
  - {name: Classify, type: Static1}
edges:
  - {from: Start, to: Classify}
  - {from: Classify, to: Billing, label: billing}
"""


def write(tmp_path: Path, text: str, name: str = "graph.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_validate_a_valid_graph(tmp_path):
    path = write(tmp_path, VALID)
    assert run("validate", path) == (
        0,
        f"{path}: valid: 0 errors, 0 warnings (6 nodes, 6 edges)\n",
        "",
    )


def test_validate_warnings_alone_exit_0(tmp_path):
    path = write(tmp_path, WARNINGS_ONLY)
    orphan = node_id_from_name("Orphan")
    start = node_id_from_name("Start")
    assert run("validate", path) == (
        0,
        f"warning [orphan_node] 'Orphan' ({orphan}) is not reachable from the start node "
        f"'Start' ({start})\n"
        f"{path}: valid: 0 errors, 1 warning (3 nodes, 1 edge)\n",
        "",
    )


def test_validate_errors_exit_1_and_print_every_issue(tmp_path):
    builder = GraphBuilder("Broken").start().decision("Route", options=["a"])
    for name in ("A", "B", "C"):
        builder = builder.on("a").static(name).end()
    spec = builder.build(validate=False)
    path = tmp_path / "broken.json"
    save_graph(spec, path)
    route = spec.nodes[1]
    out_edges = [e for e in spec.edges if e.source_id == route.id]
    code, out, err = run("validate", str(path))
    assert (code, err) == (1, "")
    assert out.splitlines() == [
        *(
            f"error [picked-edge-duplicate-label] edge 'Route' -[a]-> '{name}' (id {e.id}) has "
            f"the same label 'a' as edge 'Route' -[a]-> 'A' (id {out_edges[0].id}); labels of "
            f"'Route' ({route.id}) must be distinct"
            for name, e in zip("BC", out_edges[1:])
        ),
        f"{path}: invalid: 2 errors, 0 warnings (8 nodes, 7 edges)",
    ]


def test_validate_a_yaml_edge_to_a_missing_node(tmp_path):
    path = write(tmp_path, DANGLING, "router.yaml")
    assert run("validate", path) == (
        1,
        "",
        f"{path}:7: edges[1].to: edge 'Classify' -[billing]-> 'Billing' refers to missing node "
        "'Billing'\n",
    )


@pytest.mark.parametrize("command", ["validate", "show"])
def test_a_bad_file_is_one_clear_message_and_exit_1(tmp_path, command):
    path = write(tmp_path, "nodes:\n  - {name: Start, type: Start1, colour: red}\n")
    assert run(command, path) == (
        1,
        "",
        f"{path}:2: nodes[0].colour: unknown field; expected one of: id, type, name, traverse_in, "
        "traverse_out, thought_type, message_type, error_handling, metadata, position, "
        "max_retries, retry_delay, timeout\n",
    )
    missing = str(tmp_path / "missing.yaml")
    assert run(command, missing) == (1, "", f"{missing}: cannot read: No such file or directory\n")


def test_show_prints_nodes_settings_and_edges(tmp_path):
    path = write(tmp_path, VALID)
    code, out, err = run("show", path)
    assert (code, err) == (0, "")
    assert out == dedent(
        """\
        graph 'Small'
        start: Start

        nodes (6):
          Start  Start1
          Ask    Instruction1  (on error: retry 2x after 1.0s; timeout 30.0s)
              llm_model: gpt-4o
          Route  Switch1  (picks one branch)
              case short: len(input) < 20
              default: long
          Short  Static1
              static_text: Brief.
          Long   Text1
              text: {{ input }}
          End    End1  (stops)

        edges (6):
          Start -> Ask
          Ask -> Route
          Route -[short]-> Short
          Route -[long]-> Long
          Short -> End
          Long -> End
        """
    )


def test_show_marks_edges_to_missing_nodes(tmp_path):
    spec = GraphBuilder("G").start().static("A").build()
    ghost = UUID(int=7)
    spec.edges.append(spec.edges[0].model_copy(update={"target_id": ghost, "label": "x"}))
    path = tmp_path / "g.json"
    save_graph(spec, path)
    out = run("show", str(path))[1]
    assert out.splitlines()[-1] == f"  Start -[x]-> ? (missing node {ghost})"


def test_the_installed_qm_script(tmp_path):
    qm = Path(sys.executable).parent / "qm"
    good, bad = write(tmp_path, VALID, "good.yaml"), write(tmp_path, DANGLING, "bad.yaml")
    ok = subprocess.run([qm, "validate", good], capture_output=True, text=True, check=False)
    assert (ok.returncode, ok.stdout, ok.stderr) == (
        0,
        f"{good}: valid: 0 errors, 0 warnings (6 nodes, 6 edges)\n",
        "",
    )
    failed = subprocess.run([qm, "validate", bad], capture_output=True, text=True, check=False)
    assert (failed.returncode, failed.stdout, failed.stderr) == (
        1,
        "",
        f"{bad}:7: edges[1].to: edge 'Classify' -[billing]-> 'Billing' refers to missing node "
        "'Billing'\n",
    )
