"""The ``thread`` plugin: registration, settings, configuration-driven assembly, and
0.1.5's import path."""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from uuid import uuid4

import pytest
from pydantic import ValidationError

import qm_dispatch_thread
from qm_dispatch_thread import ThreadDispatcher, ThreadDispatcherSettings, default_max_workers
from quartermaster_engine import (
    ExecutionContext,
    FlowRunner,
    FlowStatus,
    GraphEdge,
    GraphNode,
    GraphSpec,
    NodeType,
    SimpleNodeRegistry,
)
from quartermaster_engine.config import ConfigError
from quartermaster_engine.plugins.loader import load_plugins
from quartermaster_engine.testing import chain_graph

SHIM = "quartermaster_engine.dispatchers.thread_dispatcher"
_EXPORTED = ("ThreadDispatcher", "DispatcherShutdownError", "ThreadDispatcherSettings")


def echo(ctx: ExecutionContext) -> str:
    return f"{ctx.current_node.name}({ctx.input_text})"


def test_the_plugin_registers_the_thread_dispatcher() -> None:
    plugins = load_plugins()
    registration = plugins.dispatchers.get("thread")
    assert registration.config_model is ThreadDispatcherSettings
    assert str(registration.origin) == (
        f"qm-dispatch-thread {qm_dispatch_thread.__version__} (plugin 'thread')"
    )
    assert registration.description == (
        "blocking node executors in a pool of worker threads, with optional per-node-type limits"
    )
    [info] = [p for p in plugins.plugins if p.distribution == "qm-dispatch-thread"]
    exports = [f"{SHIM}:{name}" for name in _EXPORTED]
    assert (info.hooks, info.provides, info.error) == (
        ["qm_register_dispatchers", "qm_register_exports"],
        {"dispatcher": ["thread"], "export": exports},
        None,
    )
    dispatcher = registration.create(ThreadDispatcherSettings(max_workers=2))
    assert isinstance(dispatcher, ThreadDispatcher)
    assert dispatcher.max_workers == 2
    dispatcher.shutdown()


def test_settings_defaults_and_conversions() -> None:
    assert ThreadDispatcherSettings().model_dump() == {
        "max_workers": default_max_workers(),
        "type_limits": {},
    }
    # Environment values arrive as strings.
    settings = ThreadDispatcherSettings.model_validate(
        {"max_workers": "8", "type_limits": {"slow": "2"}}
    )
    assert settings.model_dump() == {"max_workers": 8, "type_limits": {"slow": 2}}


def test_bad_settings_name_each_problem() -> None:
    with pytest.raises(ValidationError) as caught:
        ThreadDispatcherSettings.model_validate(
            {"max_workers": 0, "type_limits": {"slow": 0}, "workers": 3}
        )
    assert [(e["loc"], e["msg"]) for e in caught.value.errors()] == [
        (("max_workers",), "Input should be greater than 0"),
        (("type_limits", "slow"), "Input should be greater than 0"),
        (("workers",), "Extra inputs are not permitted"),
    ]


def test_from_config_builds_and_closes_a_thread_dispatcher() -> None:
    where: list[str] = []

    def blocking(ctx: ExecutionContext) -> str:
        where.append(threading.current_thread().name)
        return echo(ctx)

    runner = FlowRunner.from_config(
        chain_graph(4),
        {"dispatcher": {"name": "thread", "max_workers": 3, "type_limits": {"echo": 1}}},
        node_registry=SimpleNodeRegistry({"echo": blocking}),
    )
    dispatcher = runner.dispatcher
    assert isinstance(dispatcher, ThreadDispatcher)
    assert (dispatcher.max_workers, dispatcher.type_limits) == (3, {"echo": 1})
    assert runner.run("in").final_output == "n1(n0(in))"
    assert [name.startswith("qm-thread_") for name in where] == [True, True]
    runner.close()  # the runner created the dispatcher, so it shuts it down
    assert dispatcher.closed is True


def test_from_a_toml_file(tmp_path: Path) -> None:
    config = tmp_path / "qm.toml"
    config.write_text(
        '[dispatcher]\nname = "thread"\nmax_workers = 2\ntype_limits = { "echo" = 1 }\n'
    )
    runner = FlowRunner.from_config(
        chain_graph(3), config, node_registry=SimpleNodeRegistry({"echo": echo})
    )
    assert repr(runner.dispatcher) == "ThreadDispatcher(max_workers=2, type_limits={'echo': 1})"
    assert runner.run("in").final_output == "n0(in)"
    runner.close()


def test_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QM_CONFIG", raising=False)
    monkeypatch.setenv("QM_DISPATCHER", "thread")
    monkeypatch.setenv("QM_DISPATCHER__MAX_WORKERS", "5")
    monkeypatch.setenv("QM_DISPATCHER__TYPE_LIMITS", '{"echo": 2}')
    runner = FlowRunner.from_config(
        chain_graph(3), node_registry=SimpleNodeRegistry({"echo": echo})
    )
    assert repr(runner.dispatcher) == "ThreadDispatcher(max_workers=5, type_limits={'echo': 2})"
    runner.close()


def test_a_bad_config_names_the_plugin_the_settings_and_their_source() -> None:
    with pytest.raises(ConfigError) as caught:
        FlowRunner.from_config(
            chain_graph(3), {"dispatcher": {"name": "thread", "max_workers": 0, "threads": 4}}
        )
    assert str(caught.value) == (
        f"dispatcher 'thread' of qm-dispatch-thread {qm_dispatch_thread.__version__} "
        "(plugin 'thread'): setting 'max_workers': Input should be greater than 0 (from dict); "
        "setting 'threads': Extra inputs are not permitted (from dict)"
    )


def test_the_0_1_5_import_path_gives_this_dispatcher() -> None:
    shim = importlib.import_module(SHIM)
    assert shim.ThreadDispatcher is ThreadDispatcher


def test_the_0_1_5_import_path_says_what_to_install_when_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The path resolves through the plugin registry (the core imports no plugin):
    # with the plugin not loaded, the names are not there.
    monkeypatch.setenv("QM_DISABLE_PLUGINS", "qm-dispatch-thread")
    shim = importlib.import_module(SHIM)
    with pytest.raises(ImportError) as caught:
        _ = shim.ThreadDispatcher
    assert str(caught.value) == (
        "ThreadDispatcher now ships in its own distribution: pip install qm-dispatch-thread"
    )


def test_the_0_1_5_readme_example_runs_as_written() -> None:
    start_id, process_id, end_id = uuid4(), uuid4(), uuid4()
    graph = GraphSpec(
        id=uuid4(),
        agent_id=uuid4(),
        start_node_id=start_id,
        nodes=[
            GraphNode(id=start_id, type=NodeType.START, name="Start"),
            GraphNode(id=process_id, type=NodeType.INSTRUCTION, name="Process"),
            GraphNode(id=end_id, type=NodeType.END, name="End"),
        ],
        edges=[
            GraphEdge(source_id=start_id, target_id=process_id),
            GraphEdge(source_id=process_id, target_id=end_id),
        ],
    )
    registry = SimpleNodeRegistry()
    registry.register("Instruction1", lambda ctx: ctx.input_text.upper())

    # The 0.1.5 README, as written:
    from quartermaster_engine.dispatchers.thread_dispatcher import ThreadDispatcher

    dispatcher = ThreadDispatcher(max_workers=8)
    runner = FlowRunner(graph=graph, node_registry=registry, dispatcher=dispatcher)
    result = runner.run("Process this in parallel")
    dispatcher.shutdown()  # Clean up thread pool

    assert result.status is FlowStatus.COMPLETED
    assert result.final_output == "PROCESS THIS IN PARALLEL"
