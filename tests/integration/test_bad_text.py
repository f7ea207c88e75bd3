"""Text no store can keep (lone surrogates, bytes that are not UTF-8) is refused at run
with a clear error, and the CLI never crashes printing such text."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qm_store_sqlite import SQLiteStore
from quartermaster_engine import FlowRunner, SimpleNodeRegistry
from quartermaster_engine.runner.arguments import InvalidTextError
from quartermaster_engine.testing import chain_graph

QM = Path(sys.executable).parent / "qm"

ECHO = """\
name: echo
nodes:
  - {name: Start, type: Start1}
  - {name: End, type: End1}
edges:
  - {from: Start, to: End}
"""

# Jinja turns the escape in the template into a lone surrogate in Text1's output.
SURROGATE_OUTPUT = """\
name: t
nodes:
  - {name: Start, type: Start1}
  - {name: T, type: Text1, metadata: {text: "{{ '\\\\udcff' }}ok"}}
  - {name: End, type: End1}
edges:
  - {from: Start, to: T}
  - {from: T, to: End}
"""


def _qm(tmp_path: Path, *args: str | bytes, **env: str) -> subprocess.CompletedProcess[bytes]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("QM_")}
    environ.update(env)
    return subprocess.run(
        [str(QM), *args], cwd=tmp_path, capture_output=True, env=environ, check=False
    )


def test_run_refuses_a_lone_surrogate_and_stores_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "flows.db")
    registry = SimpleNodeRegistry({"work": lambda c: "x"})
    runner = FlowRunner(chain_graph(3, "work"), registry, store=store)
    with pytest.raises(InvalidTextError) as info:
        runner.run("bad \ud800 input")
    assert str(info.value) == (
        "input_message is not valid Unicode text: it holds a lone surrogate '\\ud800' at position 4"
    )

    async def flows() -> list[object]:
        try:
            return list(await store.list_flows())
        finally:
            await store.close()

    assert asyncio.run(flows()) == []


def test_qm_run_refuses_input_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "echo.yaml").write_text(ECHO)
    (tmp_path / "qm.toml").write_text('[store]\nname = "sqlite"\npath = "flows.db"\n')
    result = _qm(tmp_path, "run", "echo.yaml", "--input", b"abc\xff")
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.decode() == (
        "error: --input is not valid Unicode text: it holds a lone surrogate '\\udcff' at "
        "position 3 (the byte 0xFF, which is not UTF-8)\n"
    )


def test_qm_prints_text_a_terminal_cannot_show_escaped(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(SURROGATE_OUTPUT)
    # A strict UTF-8 stdout, as on a terminal outside the C locale.
    result = _qm(tmp_path, "run", "t.yaml", "--input", "hi", PYTHONIOENCODING="utf-8:strict")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"\\udcffok\n"
    assert b"Traceback" not in result.stderr
