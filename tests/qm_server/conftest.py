"""Fixtures of the qm-server tests: a real server on a free port, over a SQLite file."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from qm_server_support import TOKEN, LiveServer, graphs_folder

from qm_server import ServerSettings


def sqlite_config(tmp_path: Path) -> dict[str, object]:
    return {
        "store": {"name": "sqlite", "path": str(tmp_path / "flows.db")},
        "dispatcher": {"name": "async"},
    }


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server without a token (loopback), on SQLite, with the async dispatcher."""
    settings = ServerSettings(
        graphs_dir=graphs_folder(tmp_path / "graphs"), config=sqlite_config(tmp_path)
    )
    live = LiveServer(settings).start()
    yield live
    live.stop()


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[LiveServer]:
    """A server that requires the test token."""
    settings = ServerSettings(
        graphs_dir=graphs_folder(tmp_path / "graphs"), config=sqlite_config(tmp_path), token=TOKEN
    )
    live = LiveServer(settings).start()
    yield live
    live.stop()
