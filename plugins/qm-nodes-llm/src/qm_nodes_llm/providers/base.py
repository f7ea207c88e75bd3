"""The provider contract, and where executors get provider instances from.

A provider is registered through the pack's ``qm_register_llm_providers`` hook as
``register(name, factory, config_model=Settings)``; ``factory(settings)`` returns an
object with the `LLMProvider` methods. Instances are shared per process for equal
settings, so a local model loads once and HTTP connection pools are reused.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from qm_nodes_llm.types import LLMRequest, LLMResponse, ProviderUnavailableError, TokenSink

#: The extension hook's kind: ``load_plugins().registry(PROVIDER_KIND)``.
PROVIDER_KIND = "llm_provider"


class HostedSettings(BaseModel):
    """Settings every provider of a hosted API shares (``openai``, ``anthropic``)."""

    model_config = ConfigDict(extra="forbid")

    #: The API key; default: the provider's environment variable.
    api_key: SecretStr | None = None
    #: The endpoint; default: the provider's environment variable, else its own API.
    base_url: str | None = None
    #: The model for nodes that name none.
    model: str | None = None
    #: Seconds to wait for the server: to connect, and between bytes of the answer.
    timeout: float = Field(default=60.0, gt=0)
    #: Retries of rate limits, server errors and lost connections (the SDK's, with
    #: exponential backoff honouring Retry-After).
    max_retries: int = Field(default=2, ge=0)


@runtime_checkable
class LLMProvider(Protocol):
    """One configured model backend."""

    #: The registered name (``"openai"``).
    name: str

    def describe(self) -> str:
        """A short description for messages (``"openai at http://127.0.0.1:8080/v1"``)."""
        ...

    def default_model(self) -> str | None:
        """The model used when neither the node nor the settings name one."""
        ...

    async def complete(
        self,
        request: LLMRequest,
        on_token: TokenSink | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> LLMResponse:
        """Run one call. Streamed text goes to ``on_token`` as it arrives; the engine
        passes one only for a streamed free-text answer (`LLMRequest.free_text`).
        Cancelling the awaiting task aborts the call; blocking backends also poll
        ``cancelled``. Failures raise `ProviderError`."""
        ...


class ProviderSource(Protocol):
    """Gives executors provider instances by name and settings."""

    def names(self) -> list[str]:
        """The provider names available."""
        ...

    def get(
        self, name: str, settings: Mapping[str, Any], config_dir: Path | None = None
    ) -> LLMProvider:
        """The provider ``name`` with ``settings`` (validated by its model)."""
        ...


class UnknownProviderError(LookupError):
    """A node or a setting names a provider no installed plugin registers."""


_pool: dict[tuple[str, int, str], Any] = {}
_pool_lock = threading.Lock()


def _registry() -> Any:
    from quartermaster_engine.plugins.loader import load_plugins

    return load_plugins().registry(PROVIDER_KIND)


class PluginProviders:
    """Providers registered by installed plugins (the pack's own and any other's)."""

    def __init__(self, registry: Any = None) -> None:
        self._registry = registry

    @property
    def registry(self) -> Any:
        if self._registry is None:
            self._registry = _registry()
        return self._registry

    def names(self) -> list[str]:
        return sorted(self.registry.names())

    def settings_model(self, name: str) -> type[BaseModel]:
        return self._registration(name).config_model  # type: ignore[no-any-return]

    def _registration(self, name: str) -> Any:
        if name not in self.registry:
            installed = ", ".join(self.names()) or "none"
            raise UnknownProviderError(f"unknown LLM provider {name!r}; installed: {installed}")
        return self.registry.get(name)

    def validate(
        self, name: str, settings: Mapping[str, Any], config_dir: Path | None = None
    ) -> BaseModel:
        """``settings`` validated by the provider's model; errors name the provider."""
        registration = self._registration(name)
        try:
            return registration.config_model.model_validate(  # type: ignore[no-any-return]
                dict(settings), context={"config_dir": config_dir or Path.cwd()}
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(settings)'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ProviderUnavailableError(
                f"settings of LLM provider {name!r}: {problems}"
            ) from None

    def get(
        self, name: str, settings: Mapping[str, Any], config_dir: Path | None = None
    ) -> LLMProvider:
        registration = self._registration(name)
        model = self.validate(name, settings, config_dir)
        key = (name, id(registration.factory), pool_key(model))
        with _pool_lock:
            provider = _pool.get(key)
            if provider is None:
                provider = registration.create(model)
                _pool[key] = provider
        return provider  # type: ignore[no-any-return]


class StaticProviders:
    """Ready provider objects by name (tests, benchmarks, embedding applications).
    Settings are ignored: the objects are already configured."""

    def __init__(self, providers: Mapping[str, LLMProvider]) -> None:
        self._providers = dict(providers)

    def names(self) -> list[str]:
        return sorted(self._providers)

    def get(
        self, name: str, settings: Mapping[str, Any], config_dir: Path | None = None
    ) -> LLMProvider:
        try:
            return self._providers[name]
        except KeyError:
            installed = ", ".join(self.names()) or "none"
            raise UnknownProviderError(
                f"unknown LLM provider {name!r}; installed: {installed}"
            ) from None


def clear_provider_pool() -> None:
    """Forget the shared provider instances (the next call creates new ones)."""
    with _pool_lock:
        _pool.clear()


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value)


def pool_key(settings: BaseModel) -> str:
    """A text key of validated settings, secrets included (``model_dump_json`` masks them,
    which would let two API keys share one provider)."""
    return json.dumps(settings.model_dump(), sort_keys=True, default=_plain)
