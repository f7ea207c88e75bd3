"""The pack as a plugin: what it registers, the hooks it declares, and a third-party package
adding a provider and a tool through them (a real distribution found on sys.path)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from llm_support import Recorder, line, node

import qm_nodes_llm
from qm_nodes_llm import LLM_KEYS, LLM_NODE_TYPES, ToolCallFinished, ToolCallStarted
from quartermaster_engine import FlowRunner, event_from_dict
from quartermaster_engine.cli import main
from quartermaster_engine.plugins.loader import load_plugins

ROOT = Path(__file__).resolve().parents[2]


def test_the_pack_registers_its_node_types_and_providers() -> None:
    plugins = load_plugins()
    [info] = [p for p in plugins.plugins if p.distribution == "qm-nodes-llm"]
    assert info.error is None
    assert info.hooks == [
        "qm_register_exports",
        "qm_register_llm_providers",
        "qm_register_node_executors",
    ]
    assert info.provides == {
        "node_executor": [
            "Instruction1",
            "Summarize1",
            "Decision1",
            "Agent1",
            "InstructionParameters1",
            "InstructionForm1",
            "Merge1",
        ],
        "llm_provider": ["openai", "ollama", "anthropic", "llamacpp"],
        "export": [
            "quartermaster_engine.convenience:run_graph",
            "quartermaster_engine.convenience:llm_node_settings",
        ],
    }
    assert list(LLM_NODE_TYPES) == info.provides["node_executor"]
    assert plugins.registry("llm_tool").names() == []


def test_qm_plugins_lists_the_pack() -> None:
    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    [entry] = [p for p in data["plugins"] if p["distribution"] == "qm-nodes-llm"]
    assert entry["name"] == "llm"
    assert entry["provides"]["llm_provider"] == ["openai", "ollama", "anthropic", "llamacpp"]


ACME = '''
from quartermaster_engine.plugins import hookimpl
from pydantic import BaseModel, ConfigDict
from qm_nodes_llm import LLMResponse, ToolCall, function_tool


class EchoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefix: str = ">"


class Echo:
    """Calls the shout tool once, then answers with what it returned."""

    name = "echo"

    def __init__(self, settings):
        self.prefix = settings.prefix

    def describe(self):
        return "echo"

    def default_model(self):
        return "echo-1"

    async def complete(self, request, on_token=None, cancelled=None):
        results = [m.content for m in request.messages if m.role == "tool"]
        if not results:
            last = request.messages[-1].content
            call = ToolCall("c1", "shout", {"text": last})
            return LLMResponse(text="", model="echo-1", tool_calls=[call])
        text = f"{self.prefix} {results[0]}"
        if on_token is not None:
            on_token(text)
        return LLMResponse(text=text, model="echo-1")


def shout(text: str) -> str:
    """Upper-case the text."""
    return text.upper() + "!"


@hookimpl
def qm_register_llm_providers(register):
    register("echo", Echo, config_model=EchoSettings, description="Echoes.")


@hookimpl
def qm_register_llm_tools(register):
    register("shout", function_tool(shout))
'''


@pytest.fixture
def acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A third-party distribution 'acme-llm' implementing the pack's hooks."""
    (tmp_path / "acme_llm.py").write_text(textwrap.dedent(ACME))
    dist = tmp_path / "acme_llm-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-llm\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[quartermaster]\nacme = acme_llm\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    load_plugins(refresh=True)
    yield
    monkeypatch.undo()
    load_plugins(refresh=True)


@pytest.mark.usefixtures("acme")
def test_a_plugin_adds_a_provider_and_a_tool() -> None:
    plugins = load_plugins()
    [info] = [p for p in plugins.plugins if p.distribution == "acme-llm"]
    assert info.error is None
    assert info.provides == {"llm_provider": ["echo"], "llm_tool": ["shout"]}
    assert plugins.registry("llm_provider").get("echo").description == "Echoes."

    spec = line(
        (
            "Agent",
            node("Agent1", llm_provider="echo", program_version_ids=["shout"]),
        )
    )
    events = Recorder()
    config = {"nodes": {"Agent1": {"providers": {"echo": {"prefix": "echo:"}}}}}
    with FlowRunner.from_config(spec, config, on_event=events) as runner:
        result = runner.run("hello")

    assert result.final_output == "echo: HELLO!"
    assert [(e.tool, e.arguments) for e in events.of(ToolCallStarted)] == [
        ("shout", {"text": "hello"})
    ]
    assert [(e.tool, e.result) for e in events.of(ToolCallFinished)] == [("shout", "HELLO!")]


def test_tool_events_round_trip_through_json() -> None:
    from uuid import uuid4

    event = ToolCallStarted(
        flow_id=uuid4(), node_id=uuid4(), tool="t", call="c", arguments={"a": 1}
    )
    event.seq = 4
    assert event_from_dict(json.loads(event.to_json())) == event


def test_importing_has_no_side_effects(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / ".env").write_text("OPENAI_API_KEY=from-dotenv\nQM_PROVIDER=nope\n")
    code = (
        "import os, sys; before = dict(os.environ); "
        "import quartermaster_engine; assert 'qm_nodes_llm' not in sys.modules; "
        "from quartermaster_engine import run_graph; import qm_nodes_llm, qm_nodes_llm.plugin; "
        "assert dict(os.environ) == before; "
        "print(sorted(m for m in ('openai', 'anthropic', 'llama_cpp') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


def test_docs_cover_every_node_type_key_provider_and_hook() -> None:
    docs = (ROOT / "docs" / "nodes-llm.md").read_text()
    readme = (ROOT / "plugins" / "qm-nodes-llm" / "README.md").read_text()
    names = [
        *LLM_NODE_TYPES,
        *LLM_KEYS,
        "openai",
        "ollama",
        "anthropic",
        "llamacpp",
        "qm_register_llm_providers",
        "qm_register_llm_tools",
        "ToolCallStarted",
        "ToolCallFinished",
        "QM_PROVIDER",
        "OPENAI_BASE_URL",
        "OLLAMA_HOST",
        "QM_LOCAL_MODEL",
        'pip install "qm-nodes-llm[local]"',
    ]
    missing = [name for name in names if f"`{name}`" not in docs and name not in docs]
    assert missing == []
    assert 'pip install "qm-nodes-llm[local]"' in readme
    assert "docs/nodes-llm.md" in (qm_nodes_llm.__doc__ or "")
