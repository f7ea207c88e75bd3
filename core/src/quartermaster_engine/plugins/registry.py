"""What plugins registered: named factories with their settings models, by kind."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict


class NoSettings(BaseModel):
    """Settings model of a factory that takes none: any key is an error."""

    model_config = ConfigDict(extra="forbid")


class Register(Protocol):
    """The callable a hook receives."""

    def __call__(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        config_model: type[BaseModel] | None = None,
        description: str = "",
    ) -> None: ...


@dataclass(frozen=True)
class PluginOrigin:
    """Where a registration comes from."""

    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"{self.distribution} {self.version} (plugin {self.plugin!r})"


@dataclass(frozen=True)
class Registration:
    """One named factory of one kind."""

    kind: str
    name: str
    factory: Callable[..., Any]
    config_model: type[BaseModel]
    description: str
    origin: PluginOrigin

    def create(self, settings: BaseModel | None = None) -> Any:
        """Call the factory with validated settings (or the model's defaults)."""
        return self.factory(settings if settings is not None else self.config_model())


class PluginConflictError(RuntimeError):
    """Two plugins registered the same name for the same kind."""


class UnknownBackendError(LookupError):
    """A configuration names a backend no installed plugin registers."""


KIND_LABELS = {
    "store": "store",
    "dispatcher": "dispatcher",
    "node_executor": "node type",
    "event_sink": "event sink",
}


def kind_label(kind: str) -> str:
    """How messages name a kind: ``node_executor`` -> "node type", ``llm_provider`` ->
    "llm provider"."""
    return KIND_LABELS.get(kind, kind.replace("_", " "))


class Registry:
    """Registrations of one kind, by name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Registration] = {}

    def add(self, registration: Registration) -> None:
        existing = self._items.get(registration.name)
        if existing is not None:
            label = kind_label(self.kind)
            raise PluginConflictError(
                f"{label} {registration.name!r} is registered twice: by "
                f"{existing.origin} and by {registration.origin}; uninstall one or "
                "disable it with QM_DISABLE_PLUGINS"
            )
        self._items[registration.name] = registration

    def get(self, name: str) -> Registration:
        """The registration of ``name``; an error listing the installed names if absent."""
        found = self._items.get(name)
        if found is None:
            label = kind_label(self.kind)
            installed = ", ".join(sorted(self._items)) or "none"
            raise UnknownBackendError(f"unknown {label} {name!r}; installed: {installed}")
        return found

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[Registration]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        return list(self._items)
