"""The ``ollama`` provider: an Ollama server through its OpenAI-compatible ``/v1`` endpoint,
and the probe provider detection uses to find one."""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from qm_nodes_llm.providers.openai_provider import OpenAIProvider, OpenAISettings
from qm_nodes_llm.types import ProviderUnavailableError

DEFAULT_OLLAMA_HOST = "http://localhost:11434"
#: How long detection waits for an Ollama server to answer.
PROBE_TIMEOUT = 1.0


def ollama_base(host: str | None = None) -> str:
    """``host`` (default ``$OLLAMA_HOST``, else localhost:11434) as a URL with scheme and
    port, the way the ``ollama`` command reads ``OLLAMA_HOST``."""
    raw = (host if host is not None else os.environ.get("OLLAMA_HOST", "")).strip()
    if not raw:
        return DEFAULT_OLLAMA_HOST
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    hostname = parts.hostname or "localhost"
    if hostname == "0.0.0.0":  # a bind address: the server answers on loopback
        hostname = "127.0.0.1"
    if ":" in hostname:
        hostname = f"[{hostname}]"
    port = parts.port or 11434
    return f"{parts.scheme}://{hostname}:{port}{parts.path.rstrip('/')}"


def probe_ollama(base: str, timeout: float = PROBE_TIMEOUT) -> list[str] | None:
    """The models an Ollama server at ``base`` serves, or None when nothing answers as
    Ollama within ``timeout`` seconds."""
    # The standard library: the probe runs before any provider SDK is needed.
    try:
        with urllib.request.urlopen(f"{base}/api/tags", timeout=timeout) as response:
            data: Any = json.loads(response.read()) if response.status == 200 else None
    except (OSError, ValueError):  # URLError, timeouts and refused connections are OSErrors
        return None
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        return None
    return [str(m.get("name") or m.get("model")) for m in data["models"] if isinstance(m, dict)]


class OllamaSettings(BaseModel):
    """Settings of the ``ollama`` provider (``providers.ollama`` of an LLM node type)."""

    model_config = ConfigDict(extra="forbid")

    #: Default ``$OLLAMA_HOST``, else ``http://localhost:11434``.
    host: str | None = None
    #: The model for nodes that name none; default: the first model the server lists.
    model: str | None = None
    timeout: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=2, ge=0)


class OllamaProvider(OpenAIProvider):
    """An Ollama server's OpenAI-compatible endpoint."""

    def __init__(self, settings: OllamaSettings) -> None:
        self.host = ollama_base(settings.host)
        super().__init__(
            OpenAISettings(
                base_url=f"{self.host}/v1",
                model=settings.model,
                timeout=settings.timeout,
                max_retries=settings.max_retries,
                max_tokens_field="max_tokens",
            ),
            name="ollama",
        )
        self._served: str | None = None
        self._lock = threading.Lock()

    def default_model(self) -> str | None:
        if self.settings.model:
            return self.settings.model
        with self._lock:
            if self._served is None:
                models = probe_ollama(self.host, timeout=5.0)
                if models is None:
                    raise ProviderUnavailableError(f"no Ollama server answers at {self.host}")
                if not models:
                    raise ProviderUnavailableError(
                        f"the Ollama server at {self.host} has no model: pull one "
                        "(`ollama pull llama3.2`) or name one (--model)"
                    )
                self._served = models[0]
            return self._served


def create_ollama(settings: OllamaSettings) -> OllamaProvider:
    """An Ollama server (``$OLLAMA_HOST``) through its OpenAI-compatible endpoint."""
    return OllamaProvider(settings)
