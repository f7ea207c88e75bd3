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
    assert [row[8].strip() for row in rows] == ["1", "1", "1", "1", "1", "1", "1"]
    missing = uuid4()
    unknown = cli.invoke(main, ["flows", "history", str(missing)])
    assert unknown.exit_code == 1
    assert unknown.stderr.strip().startswith(f"error: no flow {missing} in the store")
