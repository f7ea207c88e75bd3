"""The ``postgres`` store as a plugin: its settings, its entry point, runners built
from configuration and the environment, and the ``qm`` commands on it."""

from __future__ import annotations

import json
from datetime import timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import ValidationError
from qm_pg_support import PASSWORD, PostgresServer, unique_schema

from qm_store_postgres import PostgresSettings, PostgresStore
from quartermaster_engine import FlowRunner, FlowStatus, NodeResult, SimpleNodeRegistry
from quartermaster_engine.cli import main
from quartermaster_engine.config import ConfigError
from quartermaster_engine.plugins.loader import load_plugins
from quartermaster_engine.testing import build_graph, call

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
    """The core and qm-store-postgres only, whatever else the workspace installs."""
    monkeypatch.setenv("QM_LOAD_PLUGINS", "qm-store-postgres")
    for var in ("QM_STORE", "QM_DISPATCHER", "QM_CONFIG", "QM_DISABLE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)


def test_settings_defaults_and_the_url_alias() -> None:
    settings = PostgresSettings.model_validate({"url": "postgresql://db/agents"})
    assert settings.model_dump() == {
        "dsn": "postgresql://db/agents",
        "schema_name": "quartermaster",
        "pool_size": 10,
        "statement_timeout": 30.0,
        "connect_timeout": 10.0,
        "retention": None,
    }
    assert PostgresSettings(dsn="postgres://db/x", retention="1d12h").retention == timedelta(
        hours=36
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "dsn\n  Field required"),
        ({"dsn": "postgresql://db/x", "schema_name": "Bad-Name"}, "invalid schema name 'Bad-Name'"),
        ({"dsn": "postgresql://db/x", "pool_size": 0}, "greater than or equal to 1"),
        ({"dsn": "postgresql://db/x", "retention": "0s"}, "retention must be a positive"),
        ({"dsn": "postgresql://db/x", "ttl": 5}, "ttl\n  Extra inputs are not permitted"),
    ],
)
def test_bad_settings(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        PostgresSettings.model_validate(values)
    assert message in str(caught.value)


def test_a_bad_dsn_in_settings_never_shows_its_password() -> None:
    with pytest.raises(ValidationError) as caught:
        PostgresSettings(dsn=f"postgresql://qm:{PASSWORD}@db:port/x")
    assert PASSWORD not in str(caught.value)
    assert "invalid PostgreSQL DSN 'postgresql://qm:***@db:port/x'" in str(caught.value)


def test_the_entry_point_is_installed() -> None:
    (ep,) = [ep for ep in entry_points(group="quartermaster") if ep.name == "postgres"]
    assert ep.value == "qm_store_postgres.plugin"
    assert ep.dist is not None
    assert ep.dist.name == "qm-store-postgres"


def test_the_plugin_registers_the_postgres_store(only_this_plugin: None) -> None:
    plugins = load_plugins(refresh=True)
    (info,) = [p for p in plugins.plugins if p.distribution == "qm-store-postgres"]
    assert (info.name, info.module, info.error) == ("postgres", "qm_store_postgres.plugin", None)
    assert info.hooks == ["qm_register_stores"]
    assert info.provides == {"store": ["postgres"]}
    registration = plugins.stores.get("postgres")
    assert registration.config_model is PostgresSettings
    store = registration.create(PostgresSettings(dsn="postgresql://u:pw@db:6000/x"))
    assert isinstance(store, PostgresStore)
    assert store.describe() == "postgres postgresql://u:***@db:6000/x schema quartermaster"


def _ask(ctx: Any) -> Any:
    if ctx.user_input is None:
        return NodeResult(wait_for_user=True, user_prompt="Approve?")
    return f"approved: {ctx.user_input}"


def test_runners_from_a_config_file_share_flows_through_the_database(
    only_this_plugin: None, pg_server: PostgresServer, tmp_path: Path
) -> None:
    schema = unique_schema()
    config = tmp_path / "qm.toml"
    config.write_text(
        f'[store]\nname = "postgres"\nurl = "{pg_server.url}"\nschema_name = "{schema}"\n'
        'pool_size = 3\nstatement_timeout = 5\nretention = "7d"\n'
    )
    graph = build_graph(
        {"Start": "Start1", "Ask": "ask", "End": "End1"}, [("Start", "Ask"), ("Ask", "End")]
    )
    registry = {"node_registry": SimpleNodeRegistry({"ask": _ask})}
    with FlowRunner.from_config(graph, config, **registry) as first:
        store = first.store
        assert isinstance(store, PostgresStore)
        assert (store.schema_name, store.retention) == (schema, timedelta(days=7))
        paused = first.run("in")
    assert paused.status is FlowStatus.PAUSED
    with FlowRunner.from_config(graph, config, **registry) as second:
        done = second.resume(paused.flow_id, "yes")
    assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "approved: yes")


def test_bad_store_settings_in_a_config_name_the_plugin_and_setting(
    only_this_plugin: None,
) -> None:
    graph = build_graph({"Start": "Start1", "End": "End1"}, [("Start", "End")])
    with pytest.raises(ConfigError) as err:
        FlowRunner.from_config(graph, store={"name": "postgres", "dsn": "mysql://u:pw@h/d"})
    assert str(err.value).startswith(
        "store 'postgres' of qm-store-postgres 0.2.0 (plugin 'postgres'): setting 'dsn': "
        "Value error, invalid PostgreSQL DSN 'mysql://u:***@h/d'"
    ), str(err.value)
    assert "pw@" not in str(err.value)


def test_the_store_from_the_environment(
    only_this_plugin: None, pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = unique_schema()
    monkeypatch.setenv("QM_STORE", "postgres")
    monkeypatch.setenv("QM_STORE__DSN", pg_server.url)
    monkeypatch.setenv("QM_STORE__SCHEMA_NAME", schema)
    monkeypatch.setenv("QM_STORE__POOL_SIZE", "2")
    graph = build_graph({"Start": "Start1", "End": "End1"}, [("Start", "End")])
    with FlowRunner.from_config(graph) as runner:
        assert isinstance(runner.store, PostgresStore)
        assert runner.store.schema_name == schema
        assert runner.run("hello").final_output == "hello"
        assert len(call(runner.store, "list_flows")) == 1


def test_qm_commands_on_a_postgres_store(
    only_this_plugin: None,
    pg_server: PostgresServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QM_LOAD_PLUGINS", "qm-store-postgres,qm-nodes-std")
    (tmp_path / "qm.toml").write_text(
        f'[store]\nname = "postgres"\ndsn = "{pg_server.url}"\nschema_name = "{unique_schema()}"\n'
    )
    (tmp_path / "approval.yaml").write_text(ASK)
    cli = CliRunner()

    started = cli.invoke(main, ["run", "approval.yaml", "-i", "ship it", "--json"])
    assert started.exit_code == 3, started.stderr  # paused
    flow_id = json.loads(started.stdout)["flow_id"]
    listed = cli.invoke(main, ["flows", "list", "--json"])
    assert listed.exit_code == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert (row["flow_id"], row["status"], row["graph"]) == (flow_id, "paused", "approval")
    assert row["by_status"] == {"finished": 1, "waiting_user": 1}

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

    again = cli.invoke(main, ["run", "approval.yaml", "-i", "second", "--json"])
    second = json.loads(again.stdout)["flow_id"]
    deleted = cli.invoke(main, ["flows", "delete", second])
    assert deleted.exit_code == 0, deleted.stderr
    pruned = cli.invoke(main, ["flows", "prune", "--older-than", "0s"])
    assert pruned.exit_code == 0, pruned.stderr
    assert pruned.stdout.startswith("pruned 1 flow ended before ")
    assert json.loads(cli.invoke(main, ["flows", "list", "--json"]).stdout) == []
