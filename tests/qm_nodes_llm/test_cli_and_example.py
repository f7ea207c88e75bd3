"""``qm run`` with LLM nodes: --provider/--model, detection, and the offline Support Agent
example on the real local model (a real ``qm`` process)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_openai import FakeOpenAI, streamed

from quartermaster_engine.cli import main
from quartermaster_graph import load_graph

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "support-agent.yaml"
QM = Path(sys.executable).parent / "qm"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def qm(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("QM_", "OPENAI_", "ANTHROPIC_", "OLLAMA_"))
    }
    environ.update(env)
    return subprocess.run(
        [str(QM), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environ,
        stdin=subprocess.DEVNULL,
        timeout=600,
        check=False,
    )


def test_support_agent_runs_offline_on_the_local_model() -> None:
    # Nothing configured and no Ollama: detection lands on the local SmolLM2 model.
    done = qm(
        "run",
        str(EXAMPLE),
        "--input",
        "I was charged twice",
        OLLAMA_HOST=f"127.0.0.1:{free_port()}",
    )

    assert done.returncode == 0, done.stderr
    progress = done.stderr.splitlines()
    started = [line.strip() for line in progress if line.strip().startswith("▶")]
    assert started == ["▶ Start", "▶ Classify", "▶ Route", "▶ Handle billing", "▶ End"]
    answer = done.stdout.strip()
    assert answer
    # The answer streamed (to stderr, as progress) before the node finished.
    assert answer in done.stderr


def test_example_is_the_0_1_5_support_agent() -> None:
    spec = load_graph(EXAMPLE)
    assert [n.name for n in spec.nodes] == [
        "Start",
        "Classify",
        "Route",
        "Handle billing",
        "Handle technical",
        "End",
    ]
    route = spec.get_node_by_name("Route")
    assert route is not None
    assert sorted(e.label for e in spec.get_edges_from(route.id)) == ["billing", "technical"]


def test_provider_and_model_options(openai_server: FakeOpenAI, tmp_path: Path) -> None:
    openai_server.reply(*(streamed(["fine"]) for _ in range(1)))
    graph = tmp_path / "one.yaml"
    graph.write_text(
        "name: One\n"
        "nodes:\n"
        "  - {name: Start, type: Start1}\n"
        "  - {name: Ask, type: Instruction1, metadata: {llm_provider: anthropic, llm_model: big}}\n"
        "  - {name: End, type: End1}\n"
        "edges:\n"
        "  - {from: Start, to: Ask}\n"
        "  - {from: Ask, to: End}\n"
    )
    done = qm(
        "run",
        str(graph),
        "--input",
        "hi",
        "--provider",
        "openai",
        "--model",
        "small",
        OPENAI_BASE_URL=openai_server.base_url,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout == "fine\n"
    assert openai_server.requests[0]["model"] == "small"
    assert openai_server.requests[0]["messages"] == [{"role": "user", "content": "hi"}]


def test_unknown_provider_is_an_error_before_running(tmp_path: Path) -> None:
    done = qm("run", str(EXAMPLE), "--input", "hi", "--provider", "nosuch")

    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0] == "error: graph Support Agent has invalid node settings:"
    assert lines[1].startswith("  nodes 'Classify' (")
    assert lines[1].endswith(
        "unknown LLM provider 'nosuch'; installed: anthropic, llamacpp, ollama, openai"
    )
    # One line for the problem all four LLM nodes share: Classify, Route, the handlers.
    assert len(lines) == 2
    assert all(
        f"'{name}' (" in lines[1] for name in ("Route", "Handle billing", "Handle technical")
    )


def test_provider_option_without_the_pack(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if qm-nodes-llm were not installed: its plugin is not loaded, so nothing
    # registers the pack's exports.
    monkeypatch.setenv("QM_DISABLE_PLUGINS", "qm-nodes-llm")
    result = CliRunner().invoke(
        main, ["run", str(EXAMPLE), "--input", "hi", "--provider", "openai"]
    )
    assert result.exit_code == 1
    assert result.output == (
        "error: --provider/--model needs the LLM nodes: pip install qm-nodes-llm\n"
    )
