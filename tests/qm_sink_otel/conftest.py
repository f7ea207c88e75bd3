"""Fixtures of the otel sink tests: a sink on the SDK's in-memory exporter, and the LLM
pack's scripted OpenAI-compatible server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "qm_nodes_llm"))

from fake_openai import FakeOpenAI
from otel_support import Spans

from qm_nodes_llm import clear_detection_cache, clear_provider_pool


@pytest.fixture
def spans() -> Iterator[Spans]:
    """A sink exporting to memory, and what it exported."""
    recorded = Spans()
    yield recorded
    recorded.sink.close()


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    """The LLM pack's fake server, started on a free loopback port."""
    clear_detection_cache()
    clear_provider_pool()
    server = FakeOpenAI().start()
    yield server
    server.stop()
    clear_provider_pool()
