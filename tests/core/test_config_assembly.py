"""EngineConfig sources and precedence; assembling runners from config and plugins."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import uuid4

import pytest
from support import Trace, chain

from quartermaster_engine import (
    AsyncDispatcher,
    Engine,
    FlowEvent,
    FlowRunner,
    FlowStatus,
    InMemoryStore,
    NodeResult,
    SimpleNodeRegistry,
    SyncDispatcher,
)
from quartermaster_engine.config import ConfigError, EngineConfig
from quartermaster_engine.sinks import JsonlSink

NO_ENV: dict[str, str] = {}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults() -> None:
    config = EngineConfig.load(environ=NO_ENV, cwd=Path("/nonexistent"))
    assert config.model_dump() == {
        "store": {"name": "memory"},
        "dispatcher": {"name": "sync"},
        "sinks": [],
        "engine": {"lease_seconds": None},
        "limits": {"max_visits": 100},
        "budgets": None,
        "nodes": {},
    }
    assert config.source_of("store.name") == "default"


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    write(
        tmp_path / "qm.toml",
        '[store]\nname = "memory"\n[dispatcher]\nname = "async"\nmax_concurrency = 4\n'
        "[limits]\nmax_visits = 7\n",
    )
    env = {"QM_DISPATCHER__MAX_CONCURRENCY": "8", "QM_LIMITS__MAX_VISITS": "9", "HOME": "/x"}
    config = EngineConfig.load(environ=env, cwd=tmp_path, overrides={"limits": {"max_visits": 11}})
    assert config.dispatcher.name == "async"
    assert config.dispatcher.settings == {"max_concurrency": "8"}
    assert config.limits.max_visits == 11
    assert config.config_dir == tmp_path.resolve()
    assert {k: s for k, _, s in config.describe()} == {
        "store.name": "qm.toml",
        "dispatcher.name": "qm.toml",
        "dispatcher.max_concurrency": "environment (QM_DISPATCHER__MAX_CONCURRENCY)",
        "sinks": "default",
        "engine.lease_seconds": "default",
        "limits.max_visits": "override",
        "budgets": "default",
        "nodes": "default",
    }


def test_the_lease_time_comes_from_the_engine_section(tmp_path: Path) -> None:
    """``[engine] lease_seconds`` (a duration), ``QM_ENGINE__LEASE_SECONDS`` over it,
    code's ``lease_seconds=`` over both; the engine's flows and limit slots use it."""
    write(
        tmp_path / "qm.toml",
        '[engine]\nlease_seconds = "5s"\n[limits."api:x"]\nmax_in_flight = 1\n',
    )
    config = EngineConfig.load(environ=NO_ENV, cwd=tmp_path)
    assert config.engine.lease_seconds == 5.0
    engine = Engine.from_config(config)
    assert engine.key_limits is not None
    assert (engine.lease_seconds, engine.key_limits.ttl) == (5.0, 5.0)
    assert engine.lease_for(uuid4()).ttl == 5.0
    env = {"QM_ENGINE__LEASE_SECONDS": "7.5"}
    from_env = EngineConfig.load(environ=env, cwd=tmp_path)
    assert from_env.engine.lease_seconds == 7.5
    assert from_env.source_of("engine.lease_seconds") == "environment (QM_ENGINE__LEASE_SECONDS)"
    assert Engine.from_config(from_env, lease_seconds=12.0).lease_seconds == 12.0
    assert Engine.from_config({}).lease_seconds == 30.0  # the default
    write(tmp_path / "qm.toml", "[engine]\nlease_seconds = 0\n")
    with pytest.raises(ConfigError) as caught:
        EngineConfig.load(environ=NO_ENV, cwd=tmp_path)
    assert str(caught.value) == (
        "invalid configuration: engine.lease_seconds: Input should be greater than 0 (from qm.toml)"
    )


def test_naming_another_backend_replaces_the_section(tmp_path: Path) -> None:
    write(tmp_path / "qm.toml", '[store]\nname = "sqlite"\npath = "flows.db"\n')
    config = EngineConfig.load(
        environ={"QM_STORE": "redis", "QM_STORE__URL": "redis://h:1/0"}, cwd=tmp_path
    )
    assert config.store.name == "redis"
    assert config.store.settings == {"url": "redis://h:1/0"}  # sqlite's path is gone
    assert config.source_of("store.url") == "environment (QM_STORE__URL)"


def test_pyproject_table_and_qm_config_variable(tmp_path: Path) -> None:
    write(
        tmp_path / "pyproject.toml",
        '[project]\nname = "x"\n[tool.quartermaster.dispatcher]\nname = "async"\n',
    )
    config = EngineConfig.load(environ=NO_ENV, cwd=tmp_path)
    assert config.dispatcher.name == "async"
    assert config.source_of("dispatcher.name") == "pyproject.toml [tool.quartermaster]"
    other = write(tmp_path / "other.toml", "[limits]\nmax_visits = 3\n")
    chosen = EngineConfig.load(environ={"QM_CONFIG": str(other)}, cwd=tmp_path)
    assert (chosen.dispatcher.name, chosen.limits.max_visits) == ("sync", 3)


def test_environment_json_values_and_node_settings() -> None:
    env = {
        "QM_SINKS": '[{"name": "jsonl", "path": "events.jsonl"}]',
        "QM_NODES__Instruction1__TEMPERATURE": "0.2",
    }
    config = EngineConfig.load(environ=env, cwd=Path("/nonexistent"))
    assert [s.model_dump() for s in config.sinks] == [{"name": "jsonl", "path": "events.jsonl"}]
    assert config.nodes == {"Instruction1": {"temperature": "0.2"}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[store\nname = 1", "qm.toml: invalid TOML: Expected ']' at the end of a table"),
        (
            "[limits]\nmax_visits = 0\n",
            "limits.max_visits: Input should be greater than or equal to 1 (from qm.toml)",
        ),
        ("[storage]\nname = 'x'\n", "storage: Extra inputs are not permitted (from qm.toml)"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    write(tmp_path / "qm.toml", content)
    with pytest.raises(ConfigError) as caught:
        EngineConfig.load(environ=NO_ENV, cwd=tmp_path)
    assert message in str(caught.value)


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file .*nope\.toml does not exist"):
        EngineConfig.load("nope.toml", environ=NO_ENV, cwd=tmp_path)


def test_from_config_assembles_backends_by_name(tmp_path: Path) -> None:
    trace = Trace().on("step")
    events_file = tmp_path / "events.jsonl"
    config = {
        "dispatcher": {"name": "async", "max_concurrency": 3},
        "sinks": [{"name": "jsonl", "path": str(events_file)}],
        "limits": {"max_visits": 5},
    }
    runner = FlowRunner.from_config(chain(4), config, node_registry=trace.registry)
    assert isinstance(runner.dispatcher, AsyncDispatcher)
    assert runner.dispatcher.max_concurrency == 3
    assert isinstance(runner.store, InMemoryStore)
    assert runner.max_visits == 5
    assert isinstance(runner.sinks[0], JsonlSink)
    with runner:
        result = runner.run("in")
    assert result.final_output == "n1(n0(in))"
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert [e["type"] for e in events] == [
        "FlowStarted",
        *["NodeStarted", "NodeFinished"] * 4,
        "FlowFinished",
    ]
    assert {e["flow_id"] for e in events} == {str(result.flow_id)}


def test_relative_sink_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    config_file = write(
        tmp_path / "qm.toml", '[[sinks]]\nname = "jsonl"\npath = "logs/events.jsonl"\n'
    )
    (tmp_path / "logs").mkdir()
    runner = FlowRunner.from_config(
        chain(3), str(config_file), node_registry=Trace().on("step").registry
    )
    runner.run("x")
    runner.close()
    assert len((tmp_path / "logs" / "events.jsonl").read_text().splitlines()) == 8


def test_overrides_win_and_ready_objects_are_used_not_owned() -> None:
    store = InMemoryStore()
    dispatcher = SyncDispatcher()
    trace = Trace().on("step")
    runner = FlowRunner.from_config(
        chain(3),
        {"dispatcher": {"name": "async"}},
        store=store,
        dispatcher=dispatcher,
        node_registry=trace.registry,
    )
    assert runner.store is store
    assert runner.dispatcher is dispatcher
    assert runner.engine.owned == ()
    result = runner.run("x")
    assert store.get_flow(result.flow_id).status is FlowStatus.COMPLETED


def test_an_explicit_registry_wins_over_installed_executors() -> None:
    registry = SimpleNodeRegistry({"End1": lambda ctx: NodeResult(output_text="custom end")})
    runner = FlowRunner.from_config(chain(2), {}, node_registry=registry)
    assert runner.run("x").final_output == "custom end"


def test_invalid_backend_settings_name_the_plugin_and_the_field() -> None:
    with pytest.raises(ConfigError) as caught:
        FlowRunner.from_config(chain(2), {"dispatcher": {"name": "async", "max_concurency": 2}})
    assert str(caught.value) == (
        "dispatcher 'async' of quartermaster-engine 0.2.0 (plugin 'core'): setting "
        "'max_concurency': Extra inputs are not permitted (from dict)"
    )


def test_an_unknown_backend_lists_the_installed_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        FlowRunner.from_config(chain(2), {"store": {"name": "cassandra"}})
    message = str(caught.value)
    assert message.startswith("unknown store 'cassandra'; installed: ")
    assert "memory" in message.split("installed: ")[1]
    assert message.endswith("(from dict)")


class Broken:
    name = "broken-sink"

    def __init__(self) -> None:
        self.calls = 0

    def emit(self, event: FlowEvent) -> None:
        self.calls += 1
        raise OSError("disk full")


def test_a_failing_sink_is_reported_and_never_breaks_the_flow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = Broken()
    trace = Trace().on("step")
    result = FlowRunner(chain(3), trace.registry, sinks=[sink]).run("x")
    assert result.status is FlowStatus.COMPLETED
    assert sink.calls == 8
    assert [r.getMessage().split(" failed")[0] for r in caplog.records] == [
        "event listener broken-sink"
    ]


def test_config_files_and_values_that_cannot_be_read_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 2000 + "1" + "]" * 2000 + "\n")
    with pytest.raises(ConfigError) as info:
        EngineConfig.load(deep)
    assert str(info.value) == (
        f"{deep}: nested deeper than 100 levels of lists and mappings (the limit is 100)"
    )
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b'[store]\nname = "\xff\xfe"\n')
    with pytest.raises(ConfigError) as info:
        EngineConfig.load(binary)
    assert str(info.value) == (
        f"{binary}: not UTF-8 text (invalid start byte at byte 16); TOML files are UTF-8"
    )
    monkeypatch.setenv("QM_CONFIG", str(tmp_path))
    with pytest.raises(ConfigError) as info:
        EngineConfig.load(None)
    assert str(info.value) == (
        f"config file {tmp_path} (from QM_CONFIG) is a folder; name a TOML file"
    )
    monkeypatch.delenv("QM_CONFIG")
    monkeypatch.setenv("QM_SINKS", "[" * 5000 + "]" * 5000)
    with pytest.raises(ConfigError) as info:
        EngineConfig.load(None)
    assert str(info.value) == (
        "QM_SINKS: the JSON value is nested deeper than 100 levels of lists and mappings "
        "(the limit is 100)"
    )
