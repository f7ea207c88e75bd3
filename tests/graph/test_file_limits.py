"""Graph files are read in time and memory proportional to the file: alias bombs,
recursive aliases and deep nesting get a named error, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from quartermaster_engine import FlowRunner, NodeConfigError
from quartermaster_engine.cli import main
from quartermaster_graph import GraphBuilder
from quartermaster_graph.data_limits import MAX_ALIAS_NODES, MAX_NESTING
from quartermaster_graph.files import GraphFileError, load_graph, parse_graph_text

# The classic "billion laughs": 9 levels of 9 aliases each, about 10**9 strings when
# expanded. The line recording of `qm validate` followed every alias (14 GB, minutes).
LAUGHS = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    + "nodes: *i\n"
)


def test_billion_laughs_is_refused_at_once() -> None:
    assert len(LAUGHS.encode()) < 600
    with pytest.raises(GraphFileError) as info:
        parse_graph_text(LAUGHS, "yaml", "laughs.yaml")
    message = str(info.value)
    assert message.startswith("laughs.yaml:1: aliases would expand to ")
    assert message.endswith(f"nodes more than the file holds; the limit is {MAX_ALIAS_NODES:,}")
    added = int(message.split("expand to ")[1].split(" nodes")[0].replace(",", ""))
    assert added > 10**8


def test_a_recursive_alias_is_refused_naming_its_line() -> None:
    text = "name: g\nnodes:\n  - &loop {name: A, type: Start1, metadata: {me: *loop}}\n"
    with pytest.raises(GraphFileError) as info:
        parse_graph_text(text, "yaml", "loop.yaml")
    assert str(info.value) == (
        "loop.yaml:3: an alias refers to a node that contains it (a recursive structure)"
    )


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 900, 1000, 100_000])
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_deep_nesting_is_a_named_error(fmt: str, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    text = f"nodes: {nested}\n" if fmt == "yaml" else f'{{"nodes": {nested}}}'
    with pytest.raises(GraphFileError) as info:
        parse_graph_text(text, fmt, f"deep.{fmt}")  # type: ignore[arg-type]
    message = str(info.value)
    if fmt == "yaml" and depth >= 1000:
        # libyaml's own limit answers first.
        assert message.startswith("deep.yaml:1: invalid YAML: exceeded maximum nesting depth")
    else:
        where = "deep.yaml:1" if fmt == "yaml" else "deep.json"
        assert message == (
            f"{where}: nested deeper than {MAX_NESTING} levels of lists and mappings "
            f"(the limit is {MAX_NESTING})"
        )


def test_anchors_within_the_limit_still_load_with_line_numbers() -> None:
    text = (
        "name: g\n"
        "shared: &retry {error_handling: Retry, max_retries: 2}\n"
        "nodes:\n"
        "  - {name: Start, type: Start1}\n"
        "  - {name: A, type: Static1, <<: *retry, metadata: {static_text: a}}\n"
        "  - {name: B, type: Static1, <<: *retry, traverse_in: Sideways}\n"
        "  - {name: End, type: End1}\n"
    )
    with pytest.raises(GraphFileError) as info:
        parse_graph_text(text, "yaml", "g.yaml")
    assert "g.yaml:6: nodes[2].traverse_in:" in str(info.value)


def test_qm_validate_answers_a_bomb_with_exit_1_and_one_line(tmp_path: Path) -> None:
    (tmp_path / "laughs.yaml").write_text(LAUGHS)
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "laughs.yaml")])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{tmp_path / 'laughs.yaml'}:1: aliases would expand to ")
    assert "Traceback" not in result.output + result.stderr


def test_a_sub_graph_file_bomb_is_refused_before_the_flow_starts(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(LAUGHS)
    graph = GraphBuilder("parent").start().sub_graph("Child", tmp_path / "child.yaml").end().build()
    with pytest.raises(NodeConfigError) as info:
        FlowRunner(graph).run("x")
    assert f"sub-graph file {tmp_path / 'child.yaml'} cannot be loaded: " in str(info.value)
    assert "aliases would expand to" in str(info.value)


def test_load_graph_reads_a_deep_json_file_as_a_named_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"nodes": ' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(GraphFileError, match="nested deeper than 100 levels"):
        load_graph(path)


def test_a_json_escape_making_a_lone_surrogate_is_named() -> None:
    node = '{"name": "S", "type": "Static1", "metadata": {"t": "x\\udcff"}}'
    text = f'{{"name": "g", "nodes": [{node}]}}'
    with pytest.raises(GraphFileError) as info:
        parse_graph_text(text, "json", "g.json")
    assert str(info.value) == (
        "g.json: nodes[0].metadata.t: the text holds a lone surrogate '\\udcff' at position 1 "
        "(the byte 0xFF, which is not UTF-8)"
    )
