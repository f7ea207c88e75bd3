"""The fronts of `engine.history`: ``qm flows history`` over a SQLite file, and
``GET /api/flows/{id}/history`` on a real qm-server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from uuid import uuid4

import pytest
from click.testing import CliRunner

from quartermaster_engine.cli import main

ROOT = Path(__file__).parents[3]
NODES = [
    "Start",
    "Remember ticket",
    "Urgent?",
    "Classify",
    "Billing reply",
    "Remember reply",
    "End",
]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QM_CONFIG", raising=False)
    monkeypatch.setenv("QM_STORE", "sqlite")
    monkeypatch.setenv("QM_STORE__PATH", str(tmp_path / "flows.db"))
    monkeypatch.setenv("QM_DISPATCHER", "sync")
    shutil.copy(ROOT / "examples" / "ticket-router.yaml", tmp_path / "ticket-router.yaml")
    return CliRunner()


def test_qm_flows_history_prints_each_checkpoint(cli: CliRunner) -> None:
    flow_id = uuid4()
    ran = cli.invoke(
        main,
        ["run", "ticket-router.yaml", "-i", "My invoice is wrong", "--flow-id", str(flow_id), "-q"],
    )
    assert ran.exit_code == 0, ran.stderr
    as_json = cli.invoke(main, ["flows", "history", str(flow_id), "--json"])
    assert as_json.exit_code == 0, as_json.stderr
    history = json.loads(as_json.stdout)
    assert [(c["seq"], c["node"], c["outcome"]) for c in history] == [
        (i, name, "finished") for i, name in enumerate(NODES, 1)
    ]
    assert history[0]["memory"] == {}
    assert history[1]["memory"] == {"ticket_text": "My invoice is wrong"}
    assert history[-1]["memory"] == history[-2]["memory"]
    assert set(history[-2]["memory"]) == {"ticket_text", "reply"}
    assert history[0]["messages"] == [{"role": "user", "content": "My invoice is wrong"}]
    table = cli.invoke(main, ["flows", "history", str(flow_id)], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.stderr
    assert f"flow {flow_id}: 7 checkpoints" in table.stdout
    rows = [line.split("│") for line in table.stdout.splitlines() if "│ finished" in line]
    assert [row[2].strip() for row in rows] == NODES
    assert rows[1][7].strip() == '{"ticket_text": "My invoice is wrong"}'
    assert [row[8].strip() for row in rows] == [str(len(c["messages"])) for c in history]
    missing = uuid4()
    unknown = cli.invoke(main, ["flows", "history", str(missing)])
    assert unknown.exit_code == 1
    assert unknown.stderr.strip().startswith(f"error: no flow {missing} in the store")


GATE = """\
name: gate
nodes:
  - {name: Start, type: Start1}
  - name: Gate
    type: If1
    metadata: {if_expression: 'memory["limit"] > 1'}
  - {name: Big, type: Static1, metadata: {static_text: big}}
  - {name: Small, type: Static1, metadata: {static_text: small}}
  - {name: End, type: End1}
edges:
  - {from: Start, to: Gate}
  - {from: Gate, to: Big, label: "true"}
  - {from: Gate, to: Small, label: "false"}
  - {from: Big, to: End}
  - {from: Small, to: End}
"""


def test_qm_flows_edit_retry_and_fork(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "gate.yaml").write_text(GATE)
    flow_id = uuid4()
    failed = cli.invoke(main, ["run", "gate.yaml", "-i", "hi", "--flow-id", str(flow_id), "-q"])
    assert failed.exit_code == 1
    assert "KeyError: 'limit'" in failed.stderr
    retried_early = cli.invoke(main, ["flows", "retry", str(flow_id), "-q"])
    assert retried_early.exit_code == 1  # the fix is not there yet: it fails again
    edited = cli.invoke(main, ["flows", "edit", str(flow_id), "--set", "limit=5"])
    assert (edited.exit_code, edited.stdout) == (0, f"edited flow {flow_id} (checkpoint 4)\n")
    retried = cli.invoke(main, ["flows", "retry", str(flow_id), "--json"])
    assert retried.exit_code == 0, retried.stderr
    assert json.loads(retried.stdout)["final_output"] == "big"
    history = json.loads(cli.invoke(main, ["flows", "history", str(flow_id), "--json"]).stdout)
    assert [(c["node"], c["attempt"], c["outcome"]) for c in history] == [
        ("Start", 1, "finished"),
        ("Gate", 1, "failed"),
        ("Gate", 2, "failed"),
        ("", 0, "edited"),
        ("Gate", 3, "finished"),
        ("Big", 1, "finished"),
        ("End", 1, "finished"),
    ]
    forked = cli.invoke(main, ["flows", "fork", str(flow_id), "--at", "1", "--set", "limit=0"])
    assert forked.exit_code == 0, forked.stderr
    assert forked.stdout == "small\n"
    fork_id = forked.stderr.splitlines()[0].split()[1]
    assert forked.stderr.splitlines()[0] == f"flow {fork_id} forked from {flow_id}"
    shown = cli.invoke(main, ["flows", "history", fork_id], env={"COLUMNS": "200"})
    assert shown.stdout.splitlines()[0] == f"forked from flow {flow_id} at checkpoint 1"
    bad = cli.invoke(main, ["flows", "edit", str(flow_id), "--set", "limit"])
    assert bad.exit_code == 2
    assert "'limit' is not KEY=VALUE" in bad.stderr
    done = cli.invoke(main, ["flows", "edit", str(flow_id), "--set", "limit=1"])
    assert done.exit_code == 1
    assert done.stderr.strip() == (
        f"error: flow {flow_id} is completed; only a paused, failed or stopped flow can be edited"
    )


def test_qm_flows_fork_reuse_unchanged_marks_reused_nodes(cli: CliRunner) -> None:
    flow_id = uuid4()
    ran = cli.invoke(
        main,
        ["run", "ticket-router.yaml", "-i", "My invoice is wrong", "--flow-id", str(flow_id), "-q"],
    )
    assert ran.exit_code == 0, ran.stderr
    forked = cli.invoke(
        main, ["flows", "fork", str(flow_id), "--at", "0", "--reuse", "unchanged", "-q"]
    )
    assert forked.exit_code == 0, forked.stderr
    assert forked.stdout == ran.stdout
    fork_id = forked.stderr.splitlines()[0].split()[1]
    history = json.loads(cli.invoke(main, ["flows", "history", fork_id, "--json"]).stdout)
    assert [(c["node"], c["outcome"], c["reused"]) for c in history] == [
        (name, "finished", True) for name in NODES
    ]
    table = cli.invoke(main, ["flows", "history", fork_id], env={"COLUMNS": "200"})
    rows = [line.split("│") for line in table.stdout.splitlines() if "│ finished" in line]
    assert [row[5].strip() for row in rows] == ["finished (reused)"] * len(NODES)
    bad = cli.invoke(main, ["flows", "fork", str(flow_id), "--reuse", "all"])
    assert bad.exit_code == 2
    assert "'all' is not 'unchanged'" in bad.stderr


def test_qm_flows_edit_messages(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "gate.yaml").write_text(GATE)
    flow_id = uuid4()
    failed = cli.invoke(main, ["run", "gate.yaml", "-i", "hi", "--flow-id", str(flow_id), "-q"])
    assert failed.exit_code == 1
    messages = [{"role": "user", "content": "edited"}]
    edited = cli.invoke(
        main, ["flows", "edit", str(flow_id), "--messages", json.dumps(messages), "--node", "Gate"]
    )
    assert (edited.exit_code, edited.stdout) == (0, f"edited flow {flow_id} (checkpoint 3)\n")
    history = json.loads(cli.invoke(main, ["flows", "history", str(flow_id), "--json"]).stdout)
    assert (history[2]["node"], history[2]["outcome"], history[2]["messages"]) == (
        "Gate",
        "edited",
        messages,
    )
    bad = cli.invoke(main, ["flows", "edit", str(flow_id), "--messages", "[oops"])
    assert bad.exit_code == 2
    assert "--messages is not JSON" in bad.stderr
    wrong = cli.invoke(main, ["flows", "edit", str(flow_id), "--messages", "[]"])
    assert wrong.exit_code == 2
    assert "--messages: messages must be a non-empty list of messages, got []" in wrong.stderr
