"""The pack as a plugin: what its hook registers, its settings, and its entry point."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from std_support import line, node

import qm_nodes_std
from qm_nodes_std import NODE_TYPES, SubAssistantExecutor, SubAssistantSettings, plugin
from qm_nodes_std.catalog import SIMPLE_EXECUTORS
from quartermaster_engine import FlowRunner, FlowStatus
from quartermaster_engine.plugins import NoSettings
from quartermaster_engine.plugins.loader import load_plugins

EXPECTED_TYPES = [
    "Static1",
    "Text1",
    "Var1",
    "TextToVariable1",
    "Blank1",
    "Comment1",
    "Break1",
    "If1",
    "Switch1",
    "StaticDecision1",
    "StaticMerge1",
    "WriteMemory1",
    "ReadMemory1",
    "UpdateMemory1",
    "FlowMemory1",
    "UserMemory1",
    "User1",
    "UserDecision1",
    "UserForm1",
    "Map1",
    "SubAssistant1",
]


class Recording:
    """A ``register`` callable that keeps what it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Callable[..., Any], type[BaseModel] | None, str]] = []

    def __call__(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        config_model: type[BaseModel] | None = None,
        description: str = "",
    ) -> None:
        self.calls.append((name, factory, config_model, description))


def test_the_hook_registers_exactly_the_pack_node_types_with_their_settings() -> None:
    register = Recording()
    plugin.qm_register_node_executors(register=register)
    assert [c[0] for c in register.calls] == EXPECTED_TYPES == list(NODE_TYPES)
    models = {name: model for name, _, model, _ in register.calls}
    assert models == {
        **{t: NoSettings for t in EXPECTED_TYPES[:-1]},
        "SubAssistant1": SubAssistantSettings,
    }
    descriptions = {name: text for name, _, _, text in register.calls}
    assert descriptions["If1"] == (
        "If1: metadata if_expression picks the edge labelled true or false "
        "(by the truth of its value)."
    )
    assert descriptions["StaticDecision1"] == (
        "StaticDecision1: metadata expression picks the branch (0.1.5's expression decision)."
    )
    assert all(descriptions.values())


def test_each_factory_builds_its_executor_from_validated_settings(tmp_path: Path) -> None:
    register = Recording()
    plugin.qm_register_node_executors(register=register)
    classes = {cls.node_type: cls for cls in SIMPLE_EXECUTORS}
    for name, factory, model, _ in register.calls:
        assert model is not None
        executor = factory(model())
        if name == "SubAssistant1":
            assert type(executor) is SubAssistantExecutor
        else:
            assert type(executor) is classes[name]
        assert executor.node_type == name
    sub_factory = register.calls[-1][1]
    settings = SubAssistantSettings(search_path=[tmp_path])
    assert sub_factory(settings).settings is settings


def test_sub_assistant_settings_resolve_relative_paths_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = {"search_path": ["graphs", "/abs"], "graphs": {"triage": "graphs/triage.yaml"}}
    settings = SubAssistantSettings.model_validate(raw, context={"config_dir": tmp_path})
    assert settings.search_path == [tmp_path / "graphs", Path("/abs")]
    assert settings.graphs == {"triage": tmp_path / "graphs" / "triage.yaml"}
    monkeypatch.chdir(tmp_path)
    assert SubAssistantSettings.model_validate(raw).search_path == [
        tmp_path / "graphs",
        Path("/abs"),
    ]
    with pytest.raises(ValidationError) as caught:
        SubAssistantSettings.model_validate({"serch_path": []})
    assert caught.value.errors()[0]["msg"] == "Extra inputs are not permitted"


@pytest.fixture
def only_this_pack(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plugin discovery limited to the core and this pack (other backends of the
    workspace are not what these tests are about)."""
    monkeypatch.setenv("QM_LOAD_PLUGINS", "qm-nodes-std")


def test_the_installed_entry_point_provides_the_pack(only_this_pack: None) -> None:
    plugins = load_plugins(refresh=True)
    (info,) = [p for p in plugins.plugins if p.distribution == "qm-nodes-std"]
    assert (info.name, info.module, info.error) == ("std", "qm_nodes_std.plugin", None)
    assert info.version == "0.2.0"
    assert info.hooks == ["qm_register_node_executors"]
    assert info.provides == {"node_executor": EXPECTED_TYPES}
    registry = plugins.node_registry()
    assert type(registry.get_executor("Switch1")) is qm_nodes_std.SwitchExecutor
    assert plugins.node_executors.get("SubAssistant1").config_model is SubAssistantSettings


def test_a_runner_from_config_uses_the_pack_and_its_settings(
    tmp_path: Path, only_this_pack: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "project"
    (folder / "graphs").mkdir(parents=True)
    (folder / "graphs" / "echo.yaml").write_text(
        "name: Echo\nnodes:\n  - {name: Start, type: Start1}\n"
        "  - {name: Say, type: Text1, metadata: {text: 'echo {{ input }}'}}\n"
        "  - {name: End, type: End1}\n"
        "edges:\n  - {from: Start, to: Say}\n  - {from: Say, to: End}\n",
        encoding="utf-8",
    )
    config = folder / "qm.toml"
    config.write_text('[nodes."SubAssistant1"]\nsearch_path = ["graphs"]\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # not the config's folder: the setting is relative to it
    spec = line(
        ("Sub", node("SubAssistant1", graph="echo.yaml")),
        ("Done", node("Text1", text="{{ input }}!")),
    )
    with FlowRunner.from_config(spec, config) as runner:
        result = runner.run("hi")
    assert (result.status, result.final_output) == (FlowStatus.COMPLETED, "echo hi!")
