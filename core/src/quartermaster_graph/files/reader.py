"""Parsed data to a `GraphSpec`: the full form and the hand-written form (names
for ids, ``from:``/``to:`` for edge ends, ``start:``, a node type's defaults),
every problem collected with its place in the file as written."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from pydantic import ValidationError as PydanticValidationError

from quartermaster_graph.builder import node_defaults
from quartermaster_graph.enums import NodeType
from quartermaster_graph.files.ids import edge_id, graph_ids, node_id_from_name
from quartermaster_graph.files.problems import (
    FileProblem,
    GraphFileError,
    Loc,
    excerpt,
    field_path,
    kind_of,
)
from quartermaster_graph.models import GraphEdge, GraphNode, GraphSpec

# Keys of the hand-written form besides the model's own fields.
_TOP_FIELDS = (*GraphSpec.model_fields, "start")
_NODE_FIELDS = tuple(GraphNode.model_fields)
_EDGE_FIELDS = (*GraphEdge.model_fields, "from", "to")
_NIL = UUID(int=0)  # stands in for an unresolved reference, which is reported on its own


class GraphReader:
    """Turns parsed data into a `GraphSpec`, collecting every problem it finds."""

    def __init__(self, source: str, lines: dict[Loc, int]) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[tuple[Loc, str]] = []
        self.reported: set[Loc] = set()
        self.raw: Any = None

    def problem(self, loc: Loc, message: str) -> None:
        # One problem per place: pydantic often repeats what was already reported.
        if loc not in self.reported:
            self.reported.add(loc)
            self.problems.append((loc, message))

    def line_of(self, loc: Loc) -> int | None:
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return None

    def fail(self) -> GraphFileError:
        problems = [
            FileProblem(self.source, self.line_of(loc), field_path(loc), message)
            for loc, message in self.problems
        ]
        # Stable sort: file order where lines are known, the rest after them.
        problems.sort(key=lambda p: p.line if p.line is not None else float("inf"))
        return GraphFileError(problems)

    # -- reading --------------------------------------------------------------

    def read(self, data: Any) -> GraphSpec:
        self.raw = data
        if not isinstance(data, dict):
            self.problem((), f"expected a mapping with 'nodes' and 'edges', got {kind_of(data)}")
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
            graph_id, agent_id = graph_ids(top["name"])
            top.setdefault("id", graph_id)
            top.setdefault("agent_id", agent_id)
        spec = self.validate(top)
        if self.problems or spec is None:
            raise self.fail()
        return spec

    def known_keys(self, raw: dict[Any, Any], loc: Loc, allowed: Sequence[str]) -> dict[str, Any]:
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
        self.problem((key,), f"expected a list, got {kind_of(value)}")
        top.pop(key)
        return []

    def read_node(self, index: int, raw: Any) -> Any:
        loc: Loc = ("nodes", index)
        if not isinstance(raw, dict):
            self.problem(loc, f"expected a mapping (a node), got {kind_of(raw)}")
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
        self, ref: Any, loc: Loc, what: str, names: dict[str, list[tuple[int, UUID]]]
    ) -> UUID:
        if not isinstance(ref, str):
            self.problem(loc, f"expected a node name, got {kind_of(ref)}")
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
            loc: Loc = ("edges", index)
            if not isinstance(raw, dict):
                self.problem(loc, f"expected a mapping (an edge), got {kind_of(raw)}")
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
                new_id = edge_id(source, target, label)
                if new_id in derived:
                    self.problem(
                        loc,
                        f"{what} repeats edges[{derived[new_id]}] (same from, to and label); "
                        "give one of them an 'id' to keep both",
                    )
                derived.setdefault(new_id, index)
                edge["id"] = new_id
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

    def original_loc(self, loc: tuple[str | int, ...], keep_last: bool) -> Loc:
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
