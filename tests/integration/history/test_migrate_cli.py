"""``qm flows migrate`` over a SQLite file: one line per flow, --dry-run, --map,
--graph, and exit status 1 when a flow is refused."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import uuid4

import pytest
from click.testing import CliRunner

from quartermaster_engine.cli import main

ASK = """\
name: ask
nodes:
  - {name: Start, type: Start1}
  - {name: Ask, type: User1}
  - {name: End, type: End1}
edges:
  - {from: Start, to: Ask}
  - {from: Ask, to: End}
"""
#: Version 2: Ask renamed Question, and a Text1 node after it.
ASK_V2 = """\
name: ask
nodes:
  - {name: Start, type: Start1}
  - {name: Question, type: User1}
  - {name: Thank, type: Text1, metadata: {text: "thanks, {{ input }}"}}
  - {name: End, type: End1}
edges:
  - {from: Start, to: Question}
  - {from: Question, to: Thank}
  - {from: Thank, to: End}
"""


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QM_CONFIG", raising=False)
    monkeypatch.setenv("QM_STORE", "sqlite")
    monkeypatch.setenv("QM_STORE__PATH", str(tmp_path / "flows.db"))
    monkeypatch.setenv("QM_DISPATCHER", "sync")
    (tmp_path / "ask.yaml").write_text(ASK)
    (tmp_path / "ask-v2.yaml").write_text(ASK_V2)
    return CliRunner()


def test_qm_flows_migrate(cli: CliRunner) -> None:
    first, second = uuid4(), uuid4()
    for fid in (first, second):
        ran = cli.invoke(main, ["run", "ask.yaml", "-i", "hi", "--flow-id", str(fid), "-q"])
        assert ran.exit_code == 3, ran.output  # paused

    refused = cli.invoke(main, ["flows", "migrate", "--to", "ask-v2.yaml", str(first)])
    assert refused.exit_code == 1
    assert refused.stdout == (
        f"{first} refused: node 'Ask' of flow {first} (waiting for input) has no node in the "
        "new graph 'ask'; name one with --map Ask=NEW\n"
    )
    dry = cli.invoke(
        main,
        [
            "flows",
            "migrate",
            "--to",
            "ask-v2.yaml",
            "--map",
            "Ask=Question",
            "--dry-run",
            "--graph",
            "ask",
        ],
    )
    assert dry.exit_code == 0, dry.output
    assert sorted(dry.stdout.splitlines()) == sorted(
        f"{fid} would migrate (Ask=Question)" for fid in (first, second)
    )
    moved = cli.invoke(
        main,
        ["flows", "migrate", "--to", "ask-v2.yaml", "--map", "Ask=Question", "--json", str(first)],
    )
    assert moved.exit_code == 0, moved.output
    assert json.loads(moved.stdout) == [
        {
            "flow_id": str(first),
            "outcome": "migrated",
            "reason": "",
            "error": "",
            "mapping": {"Start": "Start", "Ask": "Question", "End": "End"},
        }
    ]
    again = cli.invoke(main, ["flows", "migrate", "--to", "ask-v2.yaml", str(first), str(second)])
    assert again.exit_code == 1  # the second one is still refused without --map
    assert again.stdout.splitlines()[0] == f"{first} migrated"
    assert again.stdout.splitlines()[1].startswith(f"{second} refused: node 'Ask' of flow")

    done = cli.invoke(main, ["resume", str(first), "--input", "Bob", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["final_output"] == "thanks, Bob"
    history = json.loads(cli.invoke(main, ["flows", "history", str(first), "--json"]).stdout)
    assert [(c["node"], c["outcome"]) for c in history] == [
        ("Start", "finished"),
        ("Question", "waiting_user"),
        ("Question", "finished"),
        ("Thank", "finished"),
        ("End", "finished"),
    ]

    usage = cli.invoke(main, ["flows", "migrate", "--to", "ask-v2.yaml"])
    assert usage.exit_code == 2
    assert "give FLOW ids or --graph NAME (one of them)" in usage.output
    bad_map = cli.invoke(
        main, ["flows", "migrate", "--to", "ask-v2.yaml", "--map", "Ask", str(second)]
    )
    assert bad_map.exit_code == 2
    assert "--map takes OLD=NEW (node names), got 'Ask'" in bad_map.output
    bad_target = cli.invoke(
        main, ["flows", "migrate", "--to", "ask-v2.yaml", "--map", "Ask=Nope", str(second)]
    )
    assert bad_target.exit_code == 2
    assert "mapping Ask=Nope: the new graph 'ask' has no node named 'Nope'" in (bad_target.output)
