"""Fixtures of the LLM node tests: a loopback OpenAI-compatible server, and an environment
without the machine's own provider variables (detection must see only what a test sets)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai import FakeOpenAI

from qm_nodes_llm import clear_detection_cache, clear_provider_pool
from qm_nodes_llm.detect import DETECTION_ENV


@pytest.fixture(autouse=True)
def clean_llm_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in DETECTION_ENV:
        monkeypatch.delenv(name, raising=False)
    for name in ("ANTHROPIC_BASE_URL", "QM_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    clear_detection_cache()
    clear_provider_pool()
    yield
    clear_detection_cache()
    clear_provider_pool()


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    """The fake server, started on a free loopback port (a failure to start fails the test)."""
    server = FakeOpenAI().start()
    yield server
    server.stop()
