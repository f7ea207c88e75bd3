"""Passwords never appear where settings are printed: `qm config show` (table and JSON)
and configuration errors mask them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from quartermaster_engine.cli import main
from quartermaster_engine.config import EngineConfig
from quartermaster_engine.redaction import redact_setting, redact_text, redact_tree

CONFIG = """\
[store]
name = "redis"
url = "redis://app:hunter2@127.0.0.1:6390/0"

[nodes."Instruction1"]
api_key = "sk-live-123"
"""


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    for var in ("QM_STORE", "QM_STORE__URL", "QM_DISPATCHER", "QM_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "qm.toml").write_text(CONFIG)
    return CliRunner()


def test_config_show_masks_url_passwords_and_secret_settings(cli: CliRunner) -> None:
    result = cli.invoke(main, ["config", "show"])
    assert result.exit_code == 0, result.stderr
    shown = result.stdout + result.stderr
    assert "hunter2" not in shown
    assert "sk-live-123" not in shown
    assert "redis://app:***@127.0.0.1:6390/0" in shown


def test_config_show_masks_a_password_given_as_a_query_parameter(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QM_STORE__URL", "redis://127.0.0.1:6390/0?password=hunter2")
    result = cli.invoke(main, ["config", "show", "--json"])
    assert result.exit_code == 0, result.stderr
    values = {row["key"]: row["value"] for row in json.loads(result.stdout)["values"]}
    assert values["store.url"] == "redis://127.0.0.1:6390/0?password=***"
    assert "hunter2" not in result.stdout + result.stderr


def test_config_show_json_masks_them_too(cli: CliRunner) -> None:
    result = cli.invoke(main, ["config", "show", "--json"])
    assert result.exit_code == 0, result.stderr
    values = {row["key"]: row["value"] for row in json.loads(result.stdout)["values"]}
    assert values["store.url"] == "redis://app:***@127.0.0.1:6390/0"
    assert values["nodes.Instruction1.api_key"] == "***"
    assert "hunter2" not in result.stdout


def test_an_invalid_url_is_reported_without_its_password(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QM_STORE__URL", "redis://app:hunter2@127.0.0.1:6390/zero")
    result = cli.invoke(main, ["config", "show", "--json"])
    assert result.exit_code == 1
    problems = json.loads(result.stdout)["problems"]
    assert len(problems) == 1
    assert "redis://app:***@127.0.0.1:6390/zero" in problems[0]
    assert "hunter2" not in result.stdout + result.stderr


def test_the_redaction_rules() -> None:
    assert redact_text("amqp://u:p@ss@host/v and redis://:pw@h") == (
        "amqp://u:***@host/v and redis://:***@h"
    )
    assert redact_setting("store.password", "x") == "***"
    assert redact_setting("store.url", "postgresql://bob@db/x") == "postgresql://bob@db/x"
    # OTLP exporters' headers carry API keys: masked whatever the header is called.
    assert redact_setting("sinks.otel.headers.x-honeycomb-team", "hc-123") == "***"
    assert redact_setting("sinks.otel.headers", {"authorization": "Bearer t"}) == "***"
    assert redact_setting("sinks.otel.endpoint", "http://127.0.0.1:4318") == (
        "http://127.0.0.1:4318"
    )
    # Passwords and keys given as query parameters or libpq keywords, any case.
    assert redact_text("postgresql://u@h/db?sslmode=require&password=pw&SSLPassword=k") == (
        "postgresql://u@h/db?sslmode=require&password=***&SSLPassword=***"
    )
    assert redact_text("redis://h:6379/0?password=p%40ss#x") == "redis://h:6379/0?password=***#x"
    assert redact_text("'https://api/x?key=abc&page=2', host=db password=pw") == (
        "'https://api/x?key=***&page=2', host=db password=***"
    )
    assert redact_text("retry=3 timeout=5 key_prefix=qm") == "retry=3 timeout=5 key_prefix=qm"
    tree = {"store": {"url": "redis://h?password=p"}, "sinks": [{"headers": {"A": "t"}}]}
    assert redact_tree(tree) == {
        "store": {"url": "redis://h?password=***"},
        "sinks": [{"headers": "***"}],
    }


def test_the_store_still_gets_the_real_url(tmp_path: Path) -> None:
    (tmp_path / "qm.toml").write_text(CONFIG)
    config = EngineConfig.load(tmp_path / "qm.toml", environ={})
    assert config.store.settings["url"] == "redis://app:hunter2@127.0.0.1:6390/0"
