"""The ``qm`` commands that need only the core: run, config show, plugins, flows, resume."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import uuid4

import pytest
from click.testing import CliRunner

from quartermaster_engine.cli import main

PASS_THROUGH = """\
name: echo
nodes:
  - {name: Start, type: Start1}
  - {name: End, type: End1}
edges:
  - {from: Start, to: End}
"""


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    for var in ("QM_STORE", "QM_DISPATCHER", "QM_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "echo.yaml").write_text(PASS_THROUGH)
    return CliRunner()


def test_run_prints_progress_on_stderr_and_the_output_on_stdout(cli: CliRunner) -> None:
    result = cli.invoke(main, ["run", "echo.yaml", "--input", "hello there"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "hello there\n"
    lines = result.stderr.splitlines()
    assert lines[0].startswith("flow ")
    assert lines[0].endswith(" started (echo)")
    assert lines[1:5] == ["  ▶ Start", "  ✔ Start: hello there", "  ▶ End", "  ✔ End: hello there"]
    assert lines[5].endswith(" completed")
    assert lines[6].startswith("completed in ")


def test_run_json_prints_one_object(cli: CliRunner) -> None:
    flow_id = uuid4()
    result = cli.invoke(main, ["run", "echo.yaml", "-i", "x", "--json", "--flow-id", str(flow_id)])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data.pop("duration_seconds") >= 0
    assert data == {
        "flow_id": str(flow_id),
        "status": "completed",
        "final_output": "x",
        "error": None,
        "waiting": [],
    }
    assert result.stderr == ""


def test_run_reports_problems_in_one_line_with_status_1(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(PASS_THROUGH.replace("End1", "acme.Nope"))
    missing = cli.invoke(main, ["run", "bad.yaml", "-i", "x"])
    assert missing.exit_code == 1
    assert missing.stderr.startswith("error: graph echo uses node types with no executor:\n")
    assert "no executor for node type 'acme.Nope' (node 'End'" in missing.stderr
    unknown = cli.invoke(main, ["run", "echo.yaml", "-i", "x"], env={"QM_STORE": "cassandra"})
    assert unknown.exit_code == 1
    assert unknown.stderr.startswith("error: unknown store 'cassandra'; installed: ")
    assert unknown.stderr.rstrip().endswith("(from environment (QM_STORE))")
    nofile = cli.invoke(main, ["run", "nope.yaml", "-i", "x"])
    assert nofile.exit_code == 1
    assert "nope.yaml" in nofile.stderr


def test_config_show_json_gives_values_and_sources(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "qm.toml").write_text('[dispatcher]\nname = "async"\nmax_concurrency = 2\n')
    result = cli.invoke(main, ["config", "show", "--json"], env={"QM_LIMITS__MAX_VISITS": "40"})
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["problems"] == []
    assert data["config_dir"] == str(tmp_path.resolve())
    assert data["values"] == [
        {"key": "store.name", "value": "memory", "source": "default"},
        {"key": "dispatcher.name", "value": "async", "source": "qm.toml"},
        {"key": "dispatcher.max_concurrency", "value": 2, "source": "qm.toml"},
        {"key": "sinks", "value": [], "source": "default"},
        {"key": "engine.lease_seconds", "value": None, "source": "default"},
        {"key": "limits.max_visits", "value": 40, "source": "environment (QM_LIMITS__MAX_VISITS)"},
        {"key": "budgets", "value": None, "source": "default"},
        {"key": "nodes", "value": {}, "source": "default"},
    ]


def test_config_show_reports_invalid_backend_settings(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "qm.toml").write_text('[dispatcher]\nname = "async"\nmax_concurrency = 0\n')
    result = cli.invoke(main, ["config", "show"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: dispatcher 'async' of quartermaster-engine 0.2.0 (plugin 'core'): setting "
        "'max_concurrency': Input should be greater than or equal to 1 (from qm.toml)"
    )


def test_plugins_json_lists_the_core(cli: CliRunner) -> None:
    result = cli.invoke(main, ["plugins", "--json"], env={"QM_LOAD_PLUGINS": ""})
    assert result.exit_code == 0
    assert [p["name"] for p in json.loads(result.stdout)["plugins"]] == ["core"]


def test_resume_and_flows_need_a_flow_in_the_store(cli: CliRunner) -> None:
    flow_id = uuid4()
    resumed = cli.invoke(main, ["resume", str(flow_id), "--input", "yes"])
    assert resumed.exit_code == 1
    assert resumed.stderr == (
        f"error: no flow {flow_id} in the store (memory); the memory store keeps flows only "
        "inside the process that runs them: configure a durable store to keep them "
        '(e.g. [store] name = "sqlite")\n'
    )
    listed = cli.invoke(main, ["flows", "list", "--json"])
    assert (listed.exit_code, json.loads(listed.stdout)) == (0, [])
    assert listed.stderr == (
        "note: the memory store keeps flows only inside the process that runs them: "
        'configure a durable store to keep them (e.g. [store] name = "sqlite")\n'
    )
    pruned = cli.invoke(main, ["flows", "prune"])
    assert pruned.exit_code == 1
    assert pruned.stderr.strip() == "error: give --older-than, or set a retention on the store"
    bad_age = cli.invoke(main, ["flows", "prune", "--older-than", "soon"])
    assert bad_age.exit_code == 2
    assert "'soon' is not a duration like 90s, 15m, 12h, 7d, 2w or 1d12h" in bad_age.stderr


def test_an_age_too_long_for_a_duration_is_a_usage_error(cli: CliRunner) -> None:
    result = cli.invoke(main, ["flows", "prune", "--older-than", "99999999999d"])
    assert result.exit_code == 2
    assert (
        "Invalid value: '99999999999d' is too long: a duration is at most 999,999,999 days"
        in result.stderr
    )
    assert "Traceback" not in result.output


def test_a_jsonl_sink_in_a_missing_folder_is_refused_before_the_flow(
    cli: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / "qm.toml").write_text('[[sinks]]\nname = "jsonl"\npath = "nope/events.jsonl"\n')
    result = cli.invoke(main, ["run", "echo.yaml", "-i", "hi", "--config", "qm.toml"])
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: the jsonl sink cannot write {tmp_path / 'nope' / 'events.jsonl'}: "
        f"its folder {tmp_path / 'nope'} does not exist\n"
    )
    assert result.stdout == ""


def test_config_errors_are_one_line_before_anything_runs(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "bin.toml").write_bytes(b'[store]\nname = "\xff"\n')
    result = cli.invoke(main, ["run", "echo.yaml", "-i", "hi", "--config", "bin.toml"])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: {tmp_path / 'bin.toml'}: not UTF-8 text (invalid start byte at byte 16); "
        "TOML files are UTF-8\n"
    )
    (tmp_path / "conf.d").mkdir()
    result = cli.invoke(main, ["run", "echo.yaml", "-i", "hi"], env={"QM_CONFIG": "conf.d"})
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: config file {tmp_path / 'conf.d'} (from QM_CONFIG) is a folder; name a TOML file\n"
    )


def test_load_plugins_naming_a_plugin_that_is_not_installed_is_an_error(
    cli: CliRunner,
) -> None:
    result = cli.invoke(main, ["run", "echo.yaml", "-i", "hi"], env={"QM_LOAD_PLUGINS": "nosuch"})
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith(
        "error: QM_LOAD_PLUGINS names 'nosuch', which is no installed plugin; installed: "
    )
    assert "quartermaster-engine" in result.stderr
