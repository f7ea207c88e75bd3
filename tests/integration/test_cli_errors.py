"""Every ``qm`` command, given bad settings, ends with one ``error:`` line and its exit
status: never a Python traceback (real ``qm`` processes, real config files)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

QM = str(Path(sys.executable).parent / "qm")
NO_FLOW = "00000000-0000-0000-0000-000000000000"
ONE_NODE = """\
name: one
nodes:
  - {name: Start, type: Start1}
  - {name: End, type: End1}
edges:
  - {from: Start, to: End}
"""
CELERY = '[dispatcher]\nname = "celery"\nbroker_url = "redis://127.0.0.1:1/0"\n'
SQLITE = '[store]\nname = "sqlite"\npath = "flows.db"\n'

#: Every command that reads the configuration, as a user types it.
COMMANDS = {
    "run": ["run", "one.yaml", "-i", "x"],
    "resume": ["resume", NO_FLOW, "-i", "x"],
    "recover": ["recover", NO_FLOW],
    "config show": ["config", "show"],
    "flows list": ["flows", "list"],
    "flows show": ["flows", "show", NO_FLOW],
    "flows history": ["flows", "history", NO_FLOW],
    "flows events": ["flows", "events", NO_FLOW],
    "flows delete": ["flows", "delete", NO_FLOW],
    "flows prune": ["flows", "prune", "--older-than", "1d"],
    "worker": ["worker"],
    "serve": ["serve", "--graphs", "."],
}

#: name -> (qm.toml, environment, the commands that succeed in spite of it)
CASES: dict[str, tuple[str, dict[str, str], set[str]]] = {
    # The case: a store in memory under the celery dispatcher. Commands
    # that only read flows work (and find none); the rest refuse.
    "memory store, celery dispatcher": (
        CELERY,
        {"QM_STORE": "memory"},
        {"config show", "flows list", "flows prune"},
    ),
    "a store file in a missing folder": (
        SQLITE.replace("flows.db", "no/such/folder/flows.db") + CELERY,
        {},
        {"config show"},
    ),
    "a dispatcher setting of the wrong type": (
        SQLITE,
        {"QM_DISPATCHER": "thread", "QM_DISPATCHER__MAX_WORKERS": "many"},
        {"flows list", "flows prune"},  # they run no flow: no dispatcher
    ),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_bad_settings_end_in_one_error_line(tmp_path: Path, case: str, command: str) -> None:
    config, environment, succeed = CASES[case]
    (tmp_path / "qm.toml").write_text(config)
    (tmp_path / "one.yaml").write_text(ONE_NODE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("QM_")}
    done = subprocess.run(
        [QM, *COMMANDS[command], "--config", "qm.toml"],
        cwd=tmp_path,
        env={**env, **environment},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert "Traceback" not in done.stderr, done.stderr
    if command in succeed:
        assert done.returncode == 0, done.stderr
        return
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), done.stderr
