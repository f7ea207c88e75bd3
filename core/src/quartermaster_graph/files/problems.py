"""Problems of graph files: `FileProblem` (where and what), `GraphFileError` (all
of a file's problems), and the field paths and excerpts their messages quote."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: A place in parsed data: keys and list indexes from the root, ``("nodes", 3, "type")``.
Loc = tuple[str | int, ...]

#: The most characters of a file's own text an error message quotes.
EXCERPT = 24


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


def file_error(source: str, line: int | None, message: str) -> GraphFileError:
    """The error of one problem of the whole file (no field path)."""
    return GraphFileError([FileProblem(source, line, "", message)])


def field_path(loc: Loc) -> str:
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


def excerpt(value: Any, limit: int = EXCERPT) -> str:
    """``value`` quoted for an error message: escaped (``repr``: no control
    characters reach a terminal) and cut to ``limit`` characters."""
    text = str(value)
    short = text if len(text) <= limit else text[:limit] + "…"
    return repr(short)


def kind_of(value: Any) -> str:
    """What ``value`` is, for a message: ``a mapping``, ``a list``, ``an int``..."""
    names = {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}
    name = type(value).__name__
    return names.get(type(value), f"{'an' if name[0] in 'aeiou' else 'a'} {name}")
