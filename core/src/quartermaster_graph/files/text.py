"""Graph text to data: JSON and YAML parsed within the limits of `data_limits`,
with the YAML line of every key and list item (for error messages), and the YAML
loader and dumper graph files use."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from quartermaster_graph.data_limits import (
    data_too_deep,
    first_invalid_text,
    too_deep_message,
    yaml_tree_problem,
)
from quartermaster_graph.files.problems import (
    FileProblem,
    GraphFileError,
    Loc,
    field_path,
    file_error,
)

_BOOL_TAG = "tag:yaml.org,2002:bool"

# libyaml's parser and emitter when PyYAML has them: many times faster on big graphs.
try:
    from yaml import CSafeDumper as _SafeDumper
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeDumper as _SafeDumper  # type: ignore[assignment]
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]


class _GraphLoader(_SafeLoader):
    """PyYAML's safe loader, except that only true/false are booleans: YAML 1.1 also
    reads yes/no/on/off as booleans, which turns a label ``no`` into False."""


_GraphLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in _SafeLoader.yaml_implicit_resolvers.items()
}
_GraphLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class GraphDumper(_SafeDumper):
    """PyYAML's safe dumper, except that strings holding a Unicode line break (NEL,
    U+2028, U+2029) are double-quoted: PyYAML writes them raw in other styles, and
    its reader then takes them for line breaks."""


_UNICODE_BREAK = re.compile("[\x85\u2028\u2029]")


def _represent_str(dumper: _SafeDumper, data: str) -> yaml.ScalarNode:
    style = '"' if _UNICODE_BREAK.search(data) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


GraphDumper.add_representer(str, _represent_str)


def parse_json(text: str, source: str) -> Any:
    """The JSON data of ``text``; `GraphFileError` if it is not JSON or is out of limits."""
    if not text.strip():
        raise file_error(source, None, "the file is empty; expected a graph (nodes, edges, ...)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        message = f"invalid JSON: {exc.msg} (column {exc.colno})"
        raise file_error(source, exc.lineno, message) from None
    except RecursionError:
        raise file_error(source, None, too_deep_message()) from None
    if data_too_deep(data):
        raise file_error(source, None, too_deep_message())
    bad = first_invalid_text(data)
    if bad is not None:
        where = field_path(bad[0])
        raise file_error(source, None, f"{where + ': ' if where else ''}the text {bad[1]}")
    return data


def parse_yaml(text: str, source: str) -> tuple[Any, dict[Loc, int]]:
    """The YAML data and the line of every key and list item, by path."""
    loader = _GraphLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise file_error(
                source, None, "the file is empty; expected a graph (nodes, edges, ...)"
            )
        limit = yaml_tree_problem(root)
        if limit is not None:
            raise file_error(source, *limit)
        lines: dict[Loc, int] = {}
        duplicates: list[FileProblem] = []
        _record_lines(root, lines, duplicates, source)
        if duplicates:
            raise GraphFileError(duplicates)
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        raise file_error(source, *_describe_yaml_error(exc)) from None
    except yaml.YAMLError as exc:
        raise file_error(source, None, f"invalid YAML: {exc}") from None
    except RecursionError:  # PyYAML's pure-Python composer, without libyaml
        raise file_error(source, None, too_deep_message()) from None
    finally:
        loader.dispose()
    return data, lines


def _describe_yaml_error(exc: yaml.MarkedYAMLError) -> tuple[int | None, str]:
    """The line of a YAML syntax error and a one-line message."""
    mark = exc.problem_mark or exc.context_mark
    message = f"invalid YAML: {exc.problem or exc.context or 'syntax error'}"
    if mark:
        message += f" (column {mark.column + 1})"
    if exc.problem and exc.context:
        where = f" on line {exc.context_mark.line + 1}" if exc.context_mark else ""
        message += f", {exc.context}{where}"
    return (mark.line + 1 if mark else None), message


def _record_lines(
    root: yaml.Node, lines: dict[Loc, int], problems: list[FileProblem], source: str
) -> None:
    """Walk the composed YAML tree, noting lines and refusing duplicate keys. Each node
    is walked once: under an alias, lines are those of the anchored node's first path."""
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, Loc]] = [(root, ())]
    while stack:
        node, loc = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                key, line = key_node.value, key_node.start_mark.line + 1
                if key in seen and key != "<<":
                    message = f"duplicate key '{key}' (first on line {seen[key]})"
                    problems.append(FileProblem(source, line, field_path((*loc, key)), message))
                seen.setdefault(key, line)
                lines.setdefault((*loc, key), line)
                stack.append((value_node, (*loc, key)))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines.setdefault((*loc, index), item.start_mark.line + 1)
                stack.append((item, (*loc, index)))
