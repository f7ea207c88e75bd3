"""Graph files: JSON and YAML, in the full form and the hand-writable form.

The full form is the model as data (every field, every id) and round-trips
exactly. The hand-written form names nodes and lets edges refer to those names
(``from:``, ``to:``); ids left out are derived from names (uuid5), ``start:`` is
optional, and fields left out take the builder's defaults for the node's type.
Both forms are read by the same loader, so a file may mix them.

A bad file raises `GraphFileError`, whose message names the file, the YAML line
where known and the field path: ``bad.yaml:12: nodes[3].traverse_in: Input
should be 'AwaitAll' or 'AwaitFirst'``.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from uuid import UUID, uuid5

import yaml
from pydantic import ValidationError as PydanticValidationError

from quartermaster_graph.builder import node_defaults
from quartermaster_graph.data_limits import (
    data_too_deep,
    first_invalid_text,
    too_deep_message,
    yaml_tree_problem,
)
from quartermaster_graph.enums import NodeType
from quartermaster_graph.models import GraphEdge, GraphNode, GraphSpec

Format = Literal["json", "yaml"]

#: The namespace of ids derived from names; fixed forever, or derived ids would change.
ID_NAMESPACE = UUID("6f1f9a52-3c1e-5b8e-9d47-0a2c8e4b7d31")

_EXTENSIONS: dict[str, Format] = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}

# Keys of the hand-written form besides the model's own fields.
_TOP_FIELDS = (*GraphSpec.model_fields, "start")
_NODE_FIELDS = tuple(GraphNode.model_fields)
_EDGE_FIELDS = (*GraphEdge.model_fields, "from", "to")
_NIL = UUID(int=0)  # stands in for an unresolved reference, which is reported on its own

_Loc = tuple[str | int, ...]

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


class _GraphDumper(_SafeDumper):
    """PyYAML's safe dumper, except that strings holding a Unicode line break (NEL,
    U+2028, U+2029) are double-quoted: PyYAML writes them raw in other styles, and
    its reader then takes them for line breaks."""


_UNICODE_BREAK = re.compile("[\x85\u2028\u2029]")


def _represent_str(dumper: _SafeDumper, data: str) -> yaml.ScalarNode:
    style = '"' if _UNICODE_BREAK.search(data) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_GraphDumper.add_representer(str, _represent_str)


def node_id_from_name(name: str) -> UUID:
    """The id a hand-written node named ``name`` gets when it has no ``id``."""
    return uuid5(ID_NAMESPACE, f"node:{name}")


def _edge_id(source: UUID, target: UUID, label: str) -> UUID:
    return uuid5(ID_NAMESPACE, f"edge:{source}:{target}:{label}")


def _graph_ids(name: str) -> tuple[UUID, UUID]:
    return uuid5(ID_NAMESPACE, f"graph:{name}"), uuid5(ID_NAMESPACE, f"agent:{name}")


@dataclass(frozen=True)
class FileProblem:
    """One problem of a graph file: where (file, line, field path) and what."""

    source: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class GraphFileError(ValueError):
    """A graph file (or text) could not be read; ``str()`` has one line per problem."""

    def __init__(self, problems: Sequence[FileProblem]) -> None:
        self.problems: list[FileProblem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def source(self) -> str:
        """The file name (or ``<string>``) of the first problem."""
        return self.problems[0].source if self.problems else ""


# -- public API --------------------------------------------------------------


def format_for(path: str | os.PathLike[str]) -> Format:
    """``"json"`` or ``"yaml"`` by file extension (.json, .yaml, .yml)."""
    fmt = _EXTENSIONS.get(Path(path).suffix.lower())
    if fmt is None:
        raise GraphFileError(
            [FileProblem(os.fspath(path), None, "", "unknown extension; use .json, .yaml or .yml")]
        )
    return fmt


def load_graph(path: str | os.PathLike[str]) -> GraphSpec:
    """Read a graph file (.json, .yaml or .yml; full or hand-written form)."""
    source = os.fspath(path)
    fmt = format_for(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise GraphFileError(
            [FileProblem(source, None, "", f"cannot read: {exc.strerror}")]
        ) from None
    spec = parse_graph_text(data, fmt, source)
    spec._source_path = Path(path).resolve()
    return spec


def save_graph(spec: GraphSpec, path: str | os.PathLike[str]) -> None:
    """Write ``spec`` in the full form, format by extension; the file is replaced
    atomically, so a failed save never leaves half a graph behind."""
    text = dump_graph_text(spec, format_for(path))
    target = Path(path)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        temp.write_text(text, encoding="utf-8", newline="\n")
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def dump_graph_text(spec: GraphSpec, fmt: Format) -> str:
    """``spec`` as JSON or YAML text in the full form (loads back to an equal graph)."""
    data = to_json(spec)
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    text: str = yaml.dump(data, Dumper=_GraphDumper, sort_keys=False, allow_unicode=True, width=120)
    return text


def parse_graph_text(text: str | bytes, fmt: Format, source: str = "<string>") -> GraphSpec:
    """Parse graph text (JSON or YAML, full or hand-written form).

    ``source`` names the text in error messages (usually the file name).
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            problem = FileProblem(
                source, None, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})"
            )
            raise GraphFileError([problem]) from None
    lines: dict[_Loc, int] = {}
    if fmt == "json":
        data = _parse_json(text, source)
    elif fmt == "yaml":
        data, lines = _parse_yaml(text, source)
    else:
        raise ValueError(f"unknown graph format {fmt!r}; use 'json' or 'yaml'")
    return _Reader(source, lines).read(data)


def graph_from_data(data: Any, source: str = "<data>") -> GraphSpec:
    """A graph from already-parsed data (a dict in the full or hand-written form)."""
    return _Reader(source, {}).read(data)


# -- 0.1.5 module API ----------------------------------------------------------


def to_json(spec: GraphSpec) -> dict[str, Any]:
    """The graph as JSON-compatible data (the full form)."""
    return spec.model_dump(mode="json")


def from_json(data: dict[str, Any]) -> GraphSpec:
    """A graph from JSON-compatible data (full or hand-written form)."""
    return graph_from_data(data, "<json>")


def to_yaml(spec: GraphSpec) -> str:
    """The graph as YAML text (the full form)."""
    return dump_graph_text(spec, "yaml")


def from_yaml(text: str) -> GraphSpec:
    """A graph from YAML text (full or hand-written form)."""
    return parse_graph_text(text, "yaml")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the full form."""
    return GraphSpec.model_json_schema()


# -- parsing -------------------------------------------------------------------


def _fail(source: str, line: int | None, message: str) -> GraphFileError:
    return GraphFileError([FileProblem(source, line, "", message)])


def _parse_json(text: str, source: str) -> Any:
    if not text.strip():
        raise _fail(source, None, "the file is empty; expected a graph (nodes, edges, ...)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(source, exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise _fail(source, None, too_deep_message()) from None
    if data_too_deep(data):
        raise _fail(source, None, too_deep_message())
    bad = first_invalid_text(data)
    if bad is not None:
        where = _path(bad[0])
        raise _fail(source, None, f"{where + ': ' if where else ''}the text {bad[1]}")
    return data


def _parse_yaml(text: str, source: str) -> tuple[Any, dict[_Loc, int]]:
    """The YAML data and the line of every key and list item, by path."""
    loader = _GraphLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise _fail(source, None, "the file is empty; expected a graph (nodes, edges, ...)")
        limit = yaml_tree_problem(root)
        if limit is not None:
            raise _fail(source, *limit)
        lines: dict[_Loc, int] = {}
        duplicates: list[FileProblem] = []
        _record_lines(root, lines, duplicates, source)
        if duplicates:
            raise GraphFileError(duplicates)
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        raise _fail(source, *_describe_yaml_error(exc)) from None
    except yaml.YAMLError as exc:
        raise _fail(source, None, f"invalid YAML: {exc}") from None
    except RecursionError:  # PyYAML's pure-Python composer, without libyaml
        raise _fail(source, None, too_deep_message()) from None
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
    root: yaml.Node, lines: dict[_Loc, int], problems: list[FileProblem], source: str
) -> None:
    """Walk the composed YAML tree, noting lines and refusing duplicate keys. Each node
    is walked once: under an alias, lines are those of the anchored node's first path."""
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, _Loc]] = [(root, ())]
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
                    problems.append(FileProblem(source, line, _path((*loc, key)), message))
                seen.setdefault(key, line)
                lines.setdefault((*loc, key), line)
                stack.append((value_node, (*loc, key)))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines.setdefault((*loc, index), item.start_mark.line + 1)
                stack.append((item, (*loc, index)))


def _path(loc: _Loc) -> str:
    """``("nodes", 3, "traverse_in")`` -> ``nodes[3].traverse_in``; keys that came
    from the file are escaped and cut short (`excerpt`)."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = excerpt(part)[1:-1]
            text += f".{key}" if text else key
    return text


#: The most characters of a file's own text an error message quotes.
EXCERPT = 24


def excerpt(value: Any, limit: int = EXCERPT) -> str:
    """``value`` quoted for an error message: escaped (``repr``: no control
    characters reach a terminal) and cut to ``limit`` characters."""
    text = str(value)
    short = text if len(text) <= limit else text[:limit] + "…"
    return repr(short)


def _kind(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}
    name = type(value).__name__
    return names.get(type(value), f"{'an' if name[0] in 'aeiou' else 'a'} {name}")


class _Reader:
    """Turns parsed data into a `GraphSpec`, collecting every problem it finds."""

    def __init__(self, source: str, lines: dict[_Loc, int]) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[tuple[_Loc, str]] = []
        self.reported: set[_Loc] = set()
        self.raw: Any = None

    def problem(self, loc: _Loc, message: str) -> None:
        # One problem per place: pydantic often repeats what was already reported.
        if loc not in self.reported:
            self.reported.add(loc)
            self.problems.append((loc, message))

    def line_of(self, loc: _Loc) -> int | None:
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return None

    def fail(self) -> GraphFileError:
        problems = [
            FileProblem(self.source, self.line_of(loc), _path(loc), message)
            for loc, message in self.problems
        ]
        # Stable sort: file order where lines are known, the rest after them.
        problems.sort(key=lambda p: p.line if p.line is not None else float("inf"))
        return GraphFileError(problems)

    # -- reading --------------------------------------------------------------

    def read(self, data: Any) -> GraphSpec:
        self.raw = data
        if not isinstance(data, dict):
            self.problem((), f"expected a mapping with 'nodes' and 'edges', got {_kind(data)}")
            raise self.fail()
        if data and not any(key in _TOP_FIELDS for key in data):
            # Not a graph at all (a symlink to /etc/shadow, a config file): one
            # problem quoting a short excerpt, never the file's lines one by one.
            self.problem(
                (),
                "not a graph file: none of its top-level keys is a graph field (nodes, "
                f"edges, ...); it starts with {excerpt(next(iter(data)), 8)}",
            )
            raise self.fail()
        top = self.known_keys(data, (), _TOP_FIELDS)
        nodes = self.list_of(top, "nodes")
        edges = self.list_of(top, "edges")
        uses_names = (
            "start" in top
            or any(isinstance(n, dict) and "id" not in n for n in nodes)
            or any(isinstance(e, dict) and ("from" in e or "to" in e) for e in edges)
        )
        top["nodes"] = [self.read_node(i, raw) for i, raw in enumerate(nodes)]
        names = self.index_names(top["nodes"], uses_names)
        top["edges"] = self.read_edges(edges, names)
        self.read_start(top, names)
        if "name" in top and isinstance(top["name"], str):
            graph_id, agent_id = _graph_ids(top["name"])
            top.setdefault("id", graph_id)
            top.setdefault("agent_id", agent_id)
        spec = self.validate(top)
        if self.problems or spec is None:
            raise self.fail()
        return spec

    def known_keys(self, raw: dict[Any, Any], loc: _Loc, allowed: Sequence[str]) -> dict[str, Any]:
        """``raw`` without unknown keys, each reported with the allowed ones."""
        kept: dict[str, Any] = {}
        for key, value in raw.items():
            if key in allowed:
                kept[key] = value
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = (
                f"did you mean '{close[0]}'?" if close else f"expected one of: {', '.join(allowed)}"
            )
            self.problem((*loc, str(key)), f"unknown field; {hint}")
        return kept

    def list_of(self, top: dict[str, Any], key: str) -> list[Any]:
        value = top.get(key, [])
        if isinstance(value, list):
            return value
        self.problem((key,), f"expected a list, got {_kind(value)}")
        top.pop(key)
        return []

    def read_node(self, index: int, raw: Any) -> Any:
        loc: _Loc = ("nodes", index)
        if not isinstance(raw, dict):
            self.problem(loc, f"expected a mapping (a node), got {_kind(raw)}")
            return raw
        node = self.known_keys(raw, loc, _NODE_FIELDS)
        node_type = node.get("type")
        if "type" in node and not (isinstance(node_type, str) and node_type.strip()):
            self.problem(
                (*loc, "type"),
                "node type must be a non-empty string: a NodeType value such as "
                f"'Instruction1', or a custom type name; got {node_type!r}",
            )
        elif isinstance(node_type, str):
            for field, value in node_defaults(node_type).items():
                node.setdefault(field, value)
        if "id" not in node:
            name = node.get("name")
            if isinstance(name, str) and name:
                node["id"] = node_id_from_name(name)
            else:
                self.problem(
                    loc, "a node without 'id' needs a 'name' (its id is derived from the name)"
                )
        return node

    def index_names(self, nodes: list[Any], unique: bool) -> dict[str, list[tuple[int, UUID]]]:
        """Node ids by name; names must be unique once the file refers to nodes by name."""
        names: dict[str, list[tuple[int, UUID]]] = {}
        for index, node in enumerate(nodes):
            if not isinstance(node, dict) or not isinstance(node.get("name"), str):
                continue
            name = node["name"]
            entries = names.setdefault(name, [])
            if entries and unique:
                self.problem(
                    ("nodes", index, "name"),
                    f"duplicate node name '{name}' (also nodes[{entries[0][0]}]); node names "
                    "must be unique in a file that refers to nodes by name",
                )
            entries.append((index, _as_uuid(node.get("id"))))
        return names

    def resolve(
        self, ref: Any, loc: _Loc, what: str, names: dict[str, list[tuple[int, UUID]]]
    ) -> UUID:
        if not isinstance(ref, str):
            self.problem(loc, f"expected a node name, got {_kind(ref)}")
            return _NIL
        entries = names.get(ref)
        if not entries:
            close = difflib.get_close_matches(ref, list(names), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            self.problem(loc, f"{what} refers to missing node '{ref}'{hint}")
            return _NIL
        return entries[0][1]

    def read_edges(self, edges: list[Any], names: dict[str, list[tuple[int, UUID]]]) -> list[Any]:
        read: list[Any] = []
        derived: dict[UUID, int] = {}
        for index, raw in enumerate(edges):
            loc: _Loc = ("edges", index)
            if not isinstance(raw, dict):
                self.problem(loc, f"expected a mapping (an edge), got {_kind(raw)}")
                read.append(raw)
                continue
            edge = self.known_keys(raw, loc, _EDGE_FIELDS)
            if isinstance(edge.get("label"), bool):  # `label: true` of an If branch
                edge["label"] = "true" if edge["label"] else "false"
            what = _describe_edge(edge)
            for ref_key, id_key in (("from", "source_id"), ("to", "target_id")):
                if ref_key not in edge:
                    continue
                if id_key in edge:
                    self.problem(
                        (*loc, ref_key), f"give either '{ref_key}' or '{id_key}', not both"
                    )
                edge[id_key] = self.resolve(edge.pop(ref_key), (*loc, ref_key), what, names)
            source, target = _as_uuid(edge.get("source_id")), _as_uuid(edge.get("target_id"))
            label = edge.get("label", "")
            if "id" not in edge and _NIL not in (source, target) and isinstance(label, str):
                edge_id = _edge_id(source, target, label)
                if edge_id in derived:
                    self.problem(
                        loc,
                        f"{what} repeats edges[{derived[edge_id]}] (same from, to and label); "
                        "give one of them an 'id' to keep both",
                    )
                derived.setdefault(edge_id, index)
                edge["id"] = edge_id
            read.append(edge)
        return read

    def read_start(self, top: dict[str, Any], names: dict[str, list[tuple[int, UUID]]]) -> None:
        if "start" in top:
            if "start_node_id" in top:
                self.problem(("start",), "give either 'start' or 'start_node_id', not both")
            top["start_node_id"] = self.resolve(top.pop("start"), ("start",), "start", names)
            return
        if "start_node_id" in top:
            return
        starts = [
            node
            for node in top["nodes"]
            if isinstance(node, dict) and node.get("type") == NodeType.START.value
        ]
        top["start_node_id"] = starts[0].get("id", _NIL) if len(starts) == 1 else _NIL
        if not starts:
            self.problem(
                ("start",),
                "missing: no node has type Start1; add one, or name the start node with 'start:'",
            )
        elif len(starts) > 1:
            listed = ", ".join(repr(n.get("name", "?")) for n in starts)
            self.problem(
                ("start",),
                f"the graph has {len(starts)} Start1 nodes ({listed}); "
                "name the start node with 'start:'",
            )

    def validate(self, top: dict[str, Any]) -> GraphSpec | None:
        try:
            return GraphSpec.model_validate(top)
        except PydanticValidationError as exc:
            for error in exc.errors():
                loc = self.original_loc(error["loc"], error["type"] == "missing")
                message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
                self.problem(loc, message)
            return None

    def original_loc(self, loc: tuple[str | int, ...], keep_last: bool) -> _Loc:
        """``loc`` of a pydantic error as a path in the file as written: ``source_id``
        of an edge written with ``from:`` is ``from``; union member names are cut."""
        parts = list(loc)
        if len(parts) >= 3 and parts[0] == "edges" and isinstance(parts[1], int):
            raw = _child(self.raw.get("edges"), parts[1])[1] if isinstance(self.raw, dict) else None
            if isinstance(raw, dict):
                parts[2] = _written_key(raw, str(parts[2]))
        if parts[:1] == ["start_node_id"] and isinstance(self.raw, dict) and "start" in self.raw:
            parts[0] = "start"
        kept: list[str | int] = []
        value = self.raw
        for index, part in enumerate(parts):
            found, value = _child(value, part)
            if not found and not (keep_last and index == len(parts) - 1):
                break
            kept.append(part)
        return tuple(kept)


def _written_key(edge: dict[str, Any], key: str) -> str:
    """``source_id``/``target_id`` as the edge was written: ``from``/``to`` if it
    uses names (or is missing the key while naming the other end)."""
    ref, other = {"source_id": ("from", "to"), "target_id": ("to", "from")}.get(key, ("", ""))
    if ref and (ref in edge or (key not in edge and other in edge)):
        return ref
    return key


def _child(value: Any, part: str | int) -> tuple[bool, Any]:
    """``value[part]`` if it exists in the data as written."""
    if isinstance(value, dict) and part in value:
        return True, value[part]
    if isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
        return True, value[part]
    return False, None


def _as_uuid(value: Any) -> UUID:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        return _NIL


def _describe_edge(edge: dict[str, Any]) -> str:
    def end(ref_key: str, id_key: str) -> str:
        ref = edge.get(ref_key, edge.get(id_key, "?"))
        return f"'{ref}'" if ref_key in edge else str(ref)

    label = edge.get("label")
    arrow = f"-[{label}]->" if label else "->"
    return f"edge {end('from', 'source_id')} {arrow} {end('to', 'target_id')}"
