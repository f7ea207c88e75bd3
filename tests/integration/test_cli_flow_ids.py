"""What a new user meets in ``qm`` (issue 24): flow id prefixes, each node's latest
state, the memory store's note, exit statuses, ``-q``, ``--config /dev/null``, long
values piped. Real ``qm`` processes on a real SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QM = str(Path(sys.executable).parent / "qm")
GRAPH = str(ROOT / "examples" / "approval-loop.yaml")
# Two ids that share their first 8 characters, and one that does not.
TWIN_A = "42278a94-0000-4000-8000-000000000001"
TWIN_B = "42278a94-1111-4000-8000-000000000002"
OTHER = "9abcdef0-2222-4000-8000-000000000003"


def qm(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``qm ARGS`` in ``folder``: no terminal, no QM_* variables, stdout piped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QM_")}
    return subprocess.run(
        [QM, *args],
        cwd=folder,
        env={**env, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


@pytest.fixture
def paused(tmp_path: Path) -> Path:
    """A folder whose SQLite store holds three flows paused at their review."""
    (tmp_path / "qm.toml").write_text('[store]\nname = "sqlite"\npath = "flows.db"\n')
    for flow_id in (TWIN_A, TWIN_B, OTHER):
        done = qm(tmp_path, "run", GRAPH, "-i", "Ship v2", "--flow-id", flow_id, "-q")
        assert done.returncode == 3, done.stderr
    return tmp_path


def test_a_unique_prefix_names_a_flow_everywhere_and_an_ambiguous_one_is_refused(
    paused: Path,
) -> None:
    ambiguous = qm(paused, "resume", "42278a94", "-i", "approve")
    assert ambiguous.returncode == 1
    assert ambiguous.stderr == (
        f"error: flow id prefix '42278a94' is ambiguous: 2 flows match:\n  {TWIN_A}\n  {TWIN_B}\n"
    )
    for command in (["flows", "show"], ["flows", "history"], ["flows", "events"]):
        again = qm(paused, *command, "42278A94")
        assert (again.returncode, again.stderr) == (1, ambiguous.stderr), command
    unknown = qm(paused, "recover", "77")
    assert unknown.returncode == 1
    assert unknown.stderr == "error: no flow id in the store (sqlite) starts with '77'\n"
    garbage = qm(paused, "flows", "delete", "not-an-id")
    assert garbage.returncode == 1
    assert garbage.stderr == "error: 'not-an-id' is not a flow id (nor the start of one)\n"

    resumed = qm(paused, "resume", "42278a94-1", "-i", "approve", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["flow_id"] == TWIN_B
    shown = qm(paused, "flows", "show", "9abc", "--json")
    assert json.loads(shown.stdout)["flow_id"] == OTHER
    events = qm(paused, "flows", "events", "42278a94-1", "--json")
    assert {json.loads(line)["flow_id"] for line in events.stdout.splitlines()} == {TWIN_B}
    recovered = qm(paused, "recover", "9abc", "--json")
    assert recovered.returncode == 3, recovered.stderr  # still waiting for its review
    deleted = qm(paused, "flows", "delete", "9a")
    assert (deleted.returncode, deleted.stdout) == (0, f"deleted flow {OTHER}\n")


def test_piped_flows_list_prints_whole_ids_that_qm_takes_back(paused: Path) -> None:
    listed = qm(paused, "flows", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr == ""  # a durable store: no note
    rows = [line for line in listed.stdout.splitlines() if "Approval Loop" in line]
    ids = sorted(line.split("│")[1].strip() for line in rows)
    assert ids == sorted([TWIN_A, TWIN_B, OTHER])
    assert all("…" not in line for line in listed.stdout.splitlines())
    assert qm(paused, "flows", "show", ids[0]).returncode == 0


def test_a_node_is_shown_once_in_its_latest_state_and_its_history_in_order(
    paused: Path,
) -> None:
    assert qm(paused, "resume", TWIN_A, "-i", "make it Monday", "-q").returncode == 3
    done = qm(paused, "resume", TWIN_A, "-i", "approve", "-q")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # -q: no "completed in ... s"

    listed = json.loads(qm(paused, "flows", "list", "--json").stdout)
    (row,) = [r for r in listed if r["flow_id"] == TWIN_A]
    assert (row["status"], row["nodes"], row["by_status"]) == ("completed", 7, {"finished": 7})
    shown = json.loads(qm(paused, "flows", "show", TWIN_A, "--json").stdout)
    assert [(n["node"], n["visit"], n["status"]) for n in shown["nodes"]] == [
        ("Start", 1, "finished"),
        ("Save draft", 1, "finished"),
        ("Review", 2, "finished"),
        ("Approved?", 2, "finished"),
        ("Revise", 1, "finished"),
        ("Publish", 1, "finished"),
        ("End", 1, "finished"),
    ]
    history = json.loads(qm(paused, "flows", "history", TWIN_A[:8] + "-0", "--json").stdout)
    assert [(n["node"], n["visit"], n["status"]) for n in history if n["node"] == "Review"] == [
        ("Review", 1, "waiting_user"),
        ("Review", 1, "finished"),
        ("Review", 2, "waiting_user"),
        ("Review", 2, "finished"),
    ]
    assert len(history) == 11


def test_the_memory_store_says_nothing_persists(tmp_path: Path) -> None:
    listed = qm(tmp_path, "flows", "list")
    assert listed.returncode == 0
    assert "0 flows" in listed.stdout
    assert listed.stderr == (
        "note: the memory store keeps flows only inside the process that runs them: "
        'configure a durable store to keep them (e.g. [store] name = "sqlite")\n'
    )


def test_exit_statuses_are_documented_in_qm_help(tmp_path: Path) -> None:
    helped = qm(tmp_path, "--help")
    assert helped.returncode == 0
    text = helped.stdout
    assert text[text.index("Exit status:") :] == (
        "Exit status:\n"
        "    0  done (run, resume, recover: the flow completed)\n"
        "    1  an error, one line on stderr (run, resume, recover: the flow failed or\n"
        "       was stopped)\n"
        "    2  usage error (an unknown option, a missing argument)\n"
        "    3  run, resume: the flow is paused, waiting for input (continue it with\n"
        "       qm resume FLOW_ID --input ANSWER)\n"
    )
    readme = (ROOT / "README.md").read_text()
    for line in ("`0` done", "`1` an error", "`2` usage error", "`3` the flow is paused"):
        assert line in readme, line


def test_dev_null_is_an_empty_config(tmp_path: Path) -> None:
    shown = qm(tmp_path, "config", "show", "--config", "/dev/null", "--json")
    assert shown.returncode == 0, shown.stderr
    values = {v["key"]: (v["value"], v["source"]) for v in json.loads(shown.stdout)["values"]}
    assert values["store.name"] == ("memory", "default")
    ran = qm(tmp_path, "run", GRAPH, "-i", "x", "--config", "/dev/null", "-q")
    assert ran.returncode == 3  # paused in memory: the flow ran on the defaults


def test_config_show_piped_prints_long_values_whole(tmp_path: Path) -> None:
    path = "flows-" + "x" * 150 + ".db"
    (tmp_path / "qm.toml").write_text(f'[store]\nname = "sqlite"\npath = "{path}"\n')
    shown = qm(tmp_path, "config", "show")
    assert shown.returncode == 0, shown.stderr
    assert f"│ {path} " in shown.stdout


def test_qm_plugins_lists_the_worker_command_of_the_celery_plugin(tmp_path: Path) -> None:
    listed = json.loads(qm(tmp_path, "plugins", "--json").stdout)
    (celery,) = [p for p in listed["plugins"] if p["name"] == "celery"]
    assert celery["provides"] == {"dispatcher": ["celery"], "command": ["worker"]}
