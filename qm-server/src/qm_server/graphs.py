"""The graphs a server offers: the files of one folder, asked for by name, never by path."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from qm_server.errors import ApiError
from quartermaster_graph.files import GraphFileError, graph_from_data, load_graph
from quartermaster_graph.models import GraphSpec
from quartermaster_graph.validation import GraphValidationError, check_graph

#: A graph name: a file name without its extension; no separators, no leading dot.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_EXTENSIONS = (".yaml", ".yml", ".json")


def _invalid(problems: list[str], source: str) -> ApiError:
    return ApiError(422, "invalid_graph", f"graph {source} is invalid", problems)


def checked(spec: GraphSpec, source: str) -> GraphSpec:
    """``spec`` if it has no validation error, else an `ApiError` listing them all."""
    try:
        check_graph(spec)
    except GraphValidationError as exc:
        raise _invalid([str(issue) for issue in exc.errors], source) from None
    return spec


def graph_from_body(data: Any) -> GraphSpec:
    """A graph posted inline (the full or hand-written form), validated."""
    try:
        spec = graph_from_data(data, "<request>")
    except GraphFileError as exc:
        raise _invalid([str(p) for p in exc.problems], "<request>") from None
    return checked(spec, "<request>")


class GraphFolder:
    """Graph files of one folder (``NAME.yaml``, ``NAME.yml`` or ``NAME.json``).

    A name that could reach outside the folder (separators, ``..``, a symlink
    pointing elsewhere) is refused. Files are read again when they change.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()
        self._cache: dict[Path, tuple[float, GraphSpec]] = {}

    def names(self) -> list[str]:
        """Every graph name in the folder, sorted."""
        found = {
            path.stem
            for path in self.folder.iterdir()
            if path.suffix in _EXTENSIONS and _NAME.match(path.stem) and self._inside(path)
        }
        return sorted(found)

    def _inside(self, path: Path) -> bool:
        return path.resolve().parent == self.folder

    def path_of(self, name: str) -> Path:
        """The file of graph ``name``; `ApiError` if the name is not a plain name or
        no such graph exists."""
        if not _NAME.match(name) or ".." in name:
            raise ApiError(
                400,
                "invalid_graph_name",
                f"{name!r} is not a graph name: use the file name without extension "
                "(letters, digits, '.', '_', '-'; no path)",
            )
        for extension in _EXTENSIONS:
            path = self.folder / f"{name}{extension}"
            if path.is_file() and self._inside(path):
                return path
        available = ", ".join(self.names()) or "none"
        raise ApiError(404, "unknown_graph", f"no graph {name!r}; available: {available}")

    def get(self, name: str) -> GraphSpec:
        """The graph ``name``, loaded and validated (cached until the file changes)."""
        path = self.path_of(name)
        mtime = path.stat().st_mtime
        hit = self._cache.get(path)
        if hit is not None and hit[0] == mtime:
            return hit[1]
        try:
            spec = load_graph(path)
        except GraphFileError as exc:
            raise _invalid([str(p) for p in exc.problems], name) from None
        checked(spec, name)
        self._cache[path] = (mtime, spec)
        return spec
