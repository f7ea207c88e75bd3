"""Shared pieces of the ``qm`` commands: loading config and graphs, one-line failures."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console

from quartermaster_engine.config import ConfigError, EngineConfig
from quartermaster_engine.plugins.loader import PluginLoadError
from quartermaster_engine.plugins.registry import PluginConflictError, UnknownBackendError
from quartermaster_engine.runner import (
    FlowStateError,
    NodeConfigError,
    StoreNotSharedError,
    UnknownNodeTypeError,
)
from quartermaster_engine.runner.arguments import InvalidTextError
from quartermaster_engine.schedules.model import ScheduleError
from quartermaster_engine.stores.base import StoreError
from quartermaster_graph.files import GraphFileError, load_graph
from quartermaster_graph.models import GraphSpec
from quartermaster_graph.validation import GraphValidationError

T = TypeVar("T")

#: Exit statuses of ``qm run`` / ``qm resume``.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PAUSED = 0, 1, 2, 3

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Config file (default: $QM_CONFIG, ./qm.toml, or ./pyproject.toml's "
    "[tool.quartermaster]).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")

_EXPECTED = (
    ConfigError,
    GraphFileError,
    GraphValidationError,
    UnknownBackendError,
    PluginConflictError,
    PluginLoadError,
    UnknownNodeTypeError,
    NodeConfigError,
    FlowStateError,
    StoreNotSharedError,
    InvalidTextError,
    ScheduleError,
    StoreError,
    LookupError,
    OSError,
    ImportError,
)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """End the command with ``error: <message>`` on stderr."""
    click.echo(f"error: {message}", err=True)
    raise click.exceptions.Exit(code)


@contextmanager
def reported() -> Iterator[None]:
    """Turn the engine's expected errors into a one-line reason and exit status 1."""
    try:
        yield
    except _EXPECTED as exc:
        text = str(exc).strip()
        first, _, rest = text.partition("\n")
        fail(first if not rest else f"{first}\n{rest}")


def guarded(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with reported():
        return fn(*args, **kwargs)


def load_config(path: str | None) -> EngineConfig:
    return guarded(EngineConfig.load, path)


def load_graph_file(path: str) -> GraphSpec:
    return guarded(load_graph, path)


#: The width tables get when stdout is not a terminal: wide enough that nothing is cut.
PIPED_WIDTH = 10_000


def table_console() -> Console:
    """The console ``qm`` prints tables on. On a terminal, tables fit its width; piped
    or redirected, they take the width they need, so no id or value is cut."""
    console = Console(soft_wrap=False)
    if not console.is_terminal:
        console = Console(soft_wrap=False, width=PIPED_WIDTH)
    return console


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


# C0 and C1 control characters but newline and tab: ESC starts terminal commands
# (OSC 52 clipboard writes, window titles, clearing the screen), so flow text a
# node or a user wrote is never printed to a terminal with them raw.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_text(text: object) -> str:
    """``text`` fit for a terminal: each control character but newline and tab
    written as its Python escape (``\\x1b``), as ``qm flows events`` shows them."""
    return _CONTROL.sub(lambda m: repr(m[0])[1:-1], str(text))
