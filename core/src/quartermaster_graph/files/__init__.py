"""Graph files: JSON and YAML, in the full form and the hand-writable form.

The full form is the model as data (every field, every id) and round-trips
exactly. The hand-written form names nodes and lets edges refer to those names
(``from:``, ``to:``); ids left out are derived from names (uuid5), ``start:`` is
optional, and fields left out take the builder's defaults for the node's type.
Both forms are read by the same loader, so a file may mix them.

A bad file raises `GraphFileError`, whose message names the file, the YAML line
where known and the field path: ``bad.yaml:12: nodes[3].traverse_in: Input
should be 'AwaitAll' or 'AwaitFirst'``.

The parts, one job each: `problems` (FileProblem, GraphFileError, field paths),
`text` (JSON and YAML text to data, with YAML lines), `ids` (ids derived from
names), `reader` (data to a GraphSpec). Import from `quartermaster_graph.files`
(or `quartermaster_graph`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml

from quartermaster_graph.files.ids import ID_NAMESPACE, node_id_from_name
from quartermaster_graph.files.problems import (
    EXCERPT,
    FileProblem,
    GraphFileError,
    Loc,
    excerpt,
)
from quartermaster_graph.files.reader import GraphReader
from quartermaster_graph.files.text import GraphDumper, parse_json, parse_yaml
from quartermaster_graph.models import GraphSpec

__all__ = [
    "EXCERPT",
    "ID_NAMESPACE",
    "FileProblem",
    "Format",
    "GraphFileError",
    "dump_graph_text",
    "excerpt",
    "format_for",
    "from_json",
    "from_yaml",
    "graph_from_data",
    "json_schema",
    "load_graph",
    "node_id_from_name",
    "parse_graph_text",
    "save_graph",
    "to_json",
    "to_yaml",
]

Format = Literal["json", "yaml"]

_EXTENSIONS: dict[str, Format] = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}


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
    text: str = yaml.dump(data, Dumper=GraphDumper, sort_keys=False, allow_unicode=True, width=120)
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
    lines: dict[Loc, int] = {}
    if fmt == "json":
        data = parse_json(text, source)
    elif fmt == "yaml":
        data, lines = parse_yaml(text, source)
    else:
        raise ValueError(f"unknown graph format {fmt!r}; use 'json' or 'yaml'")
    return GraphReader(source, lines).read(data)


def graph_from_data(data: Any, source: str = "<data>") -> GraphSpec:
    """A graph from already-parsed data (a dict in the full or hand-written form)."""
    return GraphReader(source, {}).read(data)


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
