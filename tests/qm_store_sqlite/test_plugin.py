"""The ``sqlite`` store as a plugin: its settings, its entry point, a runner built from
configuration, and the ``qm flows`` commands on it."""

from __future__ import annotations

import json
from datetime import timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from qm_store_sqlite import SQLiteSettings, SQLiteStore
from quartermaster_engine import FlowRunner, FlowStatus
from quartermaster_engine.cli import main
from quartermaster_engine.config import ConfigError
from quartermaster_engine.plugins.loader import load_plugins
from quartermaster_engine.testing import build_graph

ASK = """\
name: approval
nodes:
  - {name: Start, type: Start1}
  - {name: Ask, type: User1, metadata: {prompt: "Approve?"}}
  - {name: End, type: End1}
edges:
  - {from: Start, to: Ask}
  - {from: Ask, to: End}
"""


@pytest.fixture
def only_this_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """The core and qm-store-sqlite only, whatever else the workspace installs."""
    monkeypatch.setenv("QM_LOAD_PLUGINS", "qm-store-sqlite")
    for var in ("QM_STORE", "QM_DISPATCHER", "QM_CONFIG", "QM_DISABLE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)


# -- settings -------------------------------------------------------------------------------------


def test_settings_resolve_a_relative_path_against_the_config_folder(tmp_path: Path) -> None:
    settings = SQLiteSettings.model_validate(
        {"path": "data/flows.db"}, context={"config_dir": tmp_path}
    )
    assert settings.path == tmp_path / "data" / "flows.db"
    assert (settings.synchronous, settings.busy_timeout, settings.retention) == (
        "NORMAL",
        30.0,
        None,
    )


def test_settings_without_a_config_folder_use_the_current_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert SQLiteSettings(path=Path("flows.db")).path == tmp_path / "flows.db"
    absolute = tmp_path / "elsewhere.db"
    assert SQLiteSettings.model_validate(
        {"path": str(absolute)}, context={"config_dir": Path("/nowhere")}
    ).path == (absolute)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("90s", timedelta(seconds=90)),
        ("2w", timedelta(weeks=2)),
        ("500ms", timedelta(milliseconds=500)),
        ("P3D", timedelta(days=3)),
        (3600, timedelta(hours=1)),
        ("3600", timedelta(hours=1)),
    ],
)
def test_retention_durations(text: Any, expected: timedelta) -> None:
    assert SQLiteSettings.model_validate({"path": "/x.db", "retention": text}).retention == (
        expected
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "path\n  Field required"),
        ({"path": "/x.db", "synchronous": "sometimes"}, "Input should be 'OFF', 'NORMAL'"),
        ({"path": "/x.db", "busy_timeout": -1}, "Input should be greater than or equal to 0"),
        ({"path": "/x.db", "retention": "0s"}, "retention must be a positive duration"),
        ({"path": "/x.db", "retention": "soon"}, "retention\n  Input should be a valid timedelta"),
        ({"path": "/x.db", "timeout": 5}, "timeout\n  Extra inputs are not permitted"),
    ],
)
def test_bad_settings(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as err:
        SQLiteSettings.model_validate(values)
    assert message in str(err.value)


def test_synchronous_is_case_insensitive() -> None:
    for value in ("off", "Normal", "FULL", "extra"):
        settings = SQLiteSettings.model_validate({"path": "/x.db", "synchronous": value})
        assert settings.synchronous == value.upper()


# -- the plugin -------------------------------------------------------------------------------


def test_the_entry_point_is_installed() -> None:
    (ep,) = [ep for ep in entry_points(group="quartermaster") if ep.name == "sqlite"]
    assert ep.value == "qm_store_sqlite.plugin"
    assert ep.dist is not None
    assert ep.dist.name == "qm-store-sqlite"


def test_the_plugin_registers_the_sqlite_store(only_this_plugin: None, tmp_path: Path) -> None:
    plugins = load_plugins(refresh=True)
    (info,) = [p for p in plugins.plugins if p.distribution == "qm-store-sqlite"]
    assert (info.name, info.module, info.error) == ("sqlite", "qm_store_sqlite.plugin", None)
    assert info.hooks == ["qm_register_exports", "qm_register_stores"]
    assert info.provides == {
        "store": ["sqlite"],
        "export": ["quartermaster_engine.stores.sqlite_store:SQLiteStore"],
    }
    registration = plugins.stores.get("sqlite")
    assert registration.config_model is SQLiteSettings
    store = registration.create(SQLiteSettings(path=tmp_path / "flows.db"))
    assert isinstance(store, SQLiteStore)
    assert store.describe() == f"sqlite {tmp_path / 'flows.db'}"


def test_runners_from_a_config_file_share_flows_through_the_file(
    only_this_plugin: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    config = project / "qm.toml"
    config.write_text(
        '[store]\nname = "sqlite"\npath = "data/flows.db"\nsynchronous = "full"\n'
        'busy_timeout = 5\nretention = "7d"\n'
    )
    monkeypatch.chdir(tmp_path)  # the path is relative to the config file, not here
    graph = build_graph(
        {"Start": "Start1", "Ask": "ask", "End": "End1"}, [("Start", "Ask"), ("Ask", "End")]
    )

    def ask(ctx: Any) -> str | Any:
        from quartermaster_engine import NodeResult

        if ctx.user_input is None:
            return NodeResult(wait_for_user=True, user_prompt="Approve?")
        return f"approved: {ctx.user_input}"

    registry = {"node_registry": _registry(ask)}
    with FlowRunner.from_config(graph, config, **registry) as first:
        store = first.store
        assert isinstance(store, SQLiteStore)
        assert store.path == project / "data" / "flows.db"
        assert (store.synchronous, store.busy_timeout) == ("FULL", 5.0)
        assert store.retention == timedelta(days=7)
        paused = first.run("in")
    assert paused.status is FlowStatus.PAUSED
    with FlowRunner.from_config(graph, config, **registry) as second:
        done = second.resume(paused.flow_id, "yes")
    assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "approved: yes")


def _registry(fn: Any) -> Any:
    from quartermaster_engine import SimpleNodeRegistry

    return SimpleNodeRegistry({"ask": fn})


@pytest.mark.parametrize(
    ("store", "message"),
    [
        (
            {"name": "sqlite"},
            "store 'sqlite' of qm-store-sqlite 0.2.0 (plugin 'sqlite'): setting 'path': "
            "Field required",
        ),
        (
            {"name": "sqlite", "path": "f.db", "synchronous": "sometimes"},
            "setting 'synchronous': Input should be 'OFF', 'NORMAL', 'FULL' or 'EXTRA' "
            "(from override)",
        ),
    ],
)
def test_bad_store_settings_in_a_config_name_the_plugin_and_setting(
    only_this_plugin: None, store: dict[str, Any], message: str
) -> None:
    graph = build_graph({"Start": "Start1", "End": "End1"}, [("Start", "End")])
    with pytest.raises(ConfigError) as err:
        FlowRunner.from_config(graph, store=store)
    assert message in str(err.value)


def test_the_store_from_the_environment(
    only_this_plugin: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QM_STORE", "sqlite")
    monkeypatch.setenv("QM_STORE__PATH", "env.db")
    monkeypatch.setenv("QM_STORE__BUSY_TIMEOUT", "2.5")
    graph = build_graph({"Start": "Start1", "End": "End1"}, [("Start", "End")])
    with FlowRunner.from_config(graph) as runner:
        assert isinstance(runner.store, SQLiteStore)
        assert (runner.store.path, runner.store.busy_timeout) == (tmp_path / "env.db", 2.5)
        assert runner.run("hello").final_output == "hello"


# -- qm run / resume / flows on the sqlite store ------------------------------------------------


EVENTS = [
    "FlowStarted",
    "NodeStarted",
    "NodeFinished",
    "NodeStarted",
    "UserInputRequired",
    "FlowPaused",
    "FlowResumed",
    "NodeStarted",
    "NodeFinished",
    "NodeStarted",
    "NodeFinished",
    "FlowFinished",
]


def test_qm_commands_on_a_sqlite_store(
    only_this_plugin: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QM_LOAD_PLUGINS", "qm-store-sqlite,qm-nodes-std")
    (tmp_path / "qm.toml").write_text('[store]\nname = "sqlite"\npath = "flows.db"\n')
    (tmp_path / "approval.yaml").write_text(ASK)
    cli = CliRunner()

    started = cli.invoke(main, ["run", "approval.yaml", "-i", "ship it", "--json"])
    assert started.exit_code == 3, started.stderr  # paused
    flow_id = json.loads(started.stdout)["flow_id"]
    listed = cli.invoke(main, ["flows", "list", "--json"])
    assert listed.exit_code == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert (row["flow_id"], row["status"], row["graph"]) == (flow_id, "paused", "approval")

    resumed = cli.invoke(main, ["resume", flow_id, "--input", "yes", "--json"])
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "completed"
    shown = cli.invoke(main, ["flows", "show", flow_id, "--json"])
    assert shown.exit_code == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["status"] == "completed"
    assert [(r["node"], r["status"]) for r in data["nodes"]] == [
        ("Start", "finished"),
        ("Ask", "finished"),
        ("End", "finished"),
    ]
    history = cli.invoke(main, ["flows", "history", flow_id[:8], "--json"])
    assert history.exit_code == 0, history.stderr
    assert [(r["node"], r["status"]) for r in json.loads(history.stdout)] == [
        ("Start", "finished"),
        ("Ask", "waiting_user"),
        ("Ask", "finished"),
        ("End", "finished"),
    ]

    logged = cli.invoke(main, ["flows", "events", flow_id, "--json"])
    assert logged.exit_code == 0, logged.stderr
    events = [json.loads(line) for line in logged.stdout.splitlines()]
    assert [(e["seq"], e["type"]) for e in events] == list(enumerate(EVENTS, start=1))
    assert {e["flow_id"] for e in events} == {flow_id}
    tail = cli.invoke(main, ["flows", "events", flow_id, "--after", "10"])
    assert tail.exit_code == 0, tail.stderr
    lines = tail.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["11", "12"]
    assert lines[0].split()[2] == "NodeFinished"
    assert "node_name='End'" in lines[0]
    assert lines[1].split()[2] == "FlowFinished"

    pruned = cli.invoke(main, ["flows", "prune", "--older-than", "0s"])
    assert pruned.exit_code == 0, pruned.stderr
    assert pruned.stdout.startswith("pruned 1 flow ended before ")
    assert json.loads(cli.invoke(main, ["flows", "list", "--json"]).stdout) == []
