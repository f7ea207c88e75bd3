"""Assembling an engine from configuration and the installed plugins.

Each backend section is validated by the settings model its plugin registered,
so an error names the plugin, the setting and where the value came from. An
unknown backend name lists the installed ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from quartermaster_engine.config import BackendConfig, ConfigError, EngineConfig
from quartermaster_engine.nodes import ListsTypes, NodeExecutor, NodeRegistry
from quartermaster_engine.plugins.loader import PluginNodeRegistry, PluginSet, load_plugins
from quartermaster_engine.plugins.registry import Registration, UnknownBackendError, kind_label
from quartermaster_engine.redaction import redact_text
from quartermaster_engine.runner.key_limits import Rule

if TYPE_CHECKING:
    from quartermaster_engine.runner.engine import Engine

E = TypeVar("E", bound="Engine")


def settings_for(
    registration: Registration,
    raw: Mapping[str, Any],
    config: EngineConfig,
    section: str,
) -> BaseModel:
    """Validate ``raw`` with the registration's settings model; errors name everything."""
    try:
        return registration.config_model.model_validate(
            dict(raw), context={"config_dir": config.config_dir}
        )
    except ValidationError as exc:
        label = kind_label(registration.kind)
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "(settings)"
            source = (
                "not set" if err["type"] == "missing" else config.source_of(f"{section}.{field}")
            )
            where = source if source == "not set" else f"from {source}"
            problems.append(f"setting {field!r}: {redact_text(err['msg'])} ({where})")
        raise ConfigError(
            f"{label} {registration.name!r} of {registration.origin}: " + "; ".join(problems)
        ) from None


def _lookup(
    plugins: PluginSet, kind: str, name: str, section: str, config: EngineConfig
) -> Registration:
    try:
        return plugins.registry(kind).get(name)
    except UnknownBackendError as exc:
        raise ConfigError(f"{exc} (from {config.source_of(section + '.name')})") from None


def build_backend(
    kind: str, section: BackendConfig, key: str, config: EngineConfig, plugins: PluginSet
) -> Any:
    """Create the backend a config section names."""
    registration = _lookup(plugins, kind, section.name, key, config)
    return registration.create(settings_for(registration, section.settings, config, key))


def build_store(config: EngineConfig, plugins: PluginSet | None = None) -> Any:
    """The store the configuration names."""
    return build_backend("store", config.store, "store", config, plugins or load_plugins())


def build_dispatcher(config: EngineConfig, plugins: PluginSet | None = None) -> Any:
    """The dispatcher the configuration names."""
    return build_backend(
        "dispatcher", config.dispatcher, "dispatcher", config, plugins or load_plugins()
    )


def build_sinks(config: EngineConfig, plugins: PluginSet | None = None) -> list[Any]:
    """The event sinks the configuration lists."""
    plugins = plugins or load_plugins()
    return [
        build_backend("event_sink", sink, f"sinks.{i}", config, plugins)
        for i, sink in enumerate(config.sinks)
    ]


def node_registry(config: EngineConfig, plugins: PluginSet | None = None) -> PluginNodeRegistry:
    """Every installed node executor, with settings from the ``[nodes]`` sections."""
    plugins = plugins or load_plugins()
    for node_type in config.nodes:
        if node_type not in plugins.node_executors:
            raise ConfigError(
                f"[nodes.{node_type!r}] configures a node type no installed plugin provides; "
                f"installed: {', '.join(plugins.node_executors.names())}"
            )

    def validate(registration: Registration, raw: Mapping[str, Any]) -> BaseModel:
        return settings_for(registration, raw, config, f"nodes.{registration.name}")

    return PluginNodeRegistry(plugins.node_executors, config.nodes, validate)


class ChainedRegistry:
    """Looks up executors in each registry in turn: the first that has one wins."""

    def __init__(self, *registries: NodeRegistry) -> None:
        self.registries = registries

    def get_executor(self, node_type: str) -> NodeExecutor | None:
        for registry in self.registries:
            executor = registry.get_executor(node_type)
            if executor is not None:
                return executor
        return None

    def list_types(self) -> list[str]:
        types: list[str] = []
        for registry in self.registries:
            if isinstance(registry, ListsTypes):
                types.extend(t for t in registry.list_types() if t not in types)
        return types


#: Keyword arguments of `from_config` that go to the `Engine` itself.
ENGINE_KWARGS = (
    "on_event",
    "context_manager",
    "persistence",
    "lease_seconds",
    "listener_budget",
    "clock",
)


@dataclass
class Assembled:
    """What `assemble` built: the parts of an engine, and which of them it owns."""

    config: EngineConfig
    store: Any
    dispatcher: Any
    sinks: list[Any]
    installed: PluginNodeRegistry
    registry: NodeRegistry
    owned: list[Any] = field(default_factory=list)
    engine_kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self, engine_class: type[E]) -> E:
        """An engine of these parts, owning the backends built here. ``[engine]
        lease_seconds`` applies unless ``lease_seconds`` was given in code."""
        kwargs = dict(self.engine_kwargs)
        if self.config.engine.lease_seconds is not None:
            kwargs.setdefault("lease_seconds", self.config.engine.lease_seconds)
        engine = engine_class(
            self.store,
            self.dispatcher,
            self.registry,
            sinks=self.sinks,
            max_visits=self.config.limits.max_visits,
            budgets=self.config.budgets,
            key_limits={
                k: Rule(v.max_in_flight, v.max_requests, v.per, v.max_tokens)
                for k, v in self.config.limits.keys.items()
            },
            **kwargs,
        )
        engine.executors.installed = self.installed
        engine.config = self.config
        for item in self.owned:
            engine.own(item)
        return engine


def assemble(config: Any, overrides: dict[str, Any]) -> Assembled:
    """The parts of an engine from configuration (see `Engine.from_config`):
    ``overrides`` may hold config sections as dicts, ready ``store``/``dispatcher``
    objects, a ``node_registry`` (wins over the installed executors) and the
    `ENGINE_KWARGS`. Backends built here are listed in ``owned``."""
    overrides = dict(overrides)
    engine_kwargs = {k: overrides.pop(k) for k in ENGINE_KWARGS if k in overrides}
    explicit = overrides.pop("node_registry", None)
    objects = {
        k: overrides.pop(k)
        for k in ("store", "dispatcher")
        if k in overrides and not isinstance(overrides[k], dict | str)
    }
    for key in ("store", "dispatcher"):
        if isinstance(overrides.get(key), str):
            overrides[key] = {"name": overrides[key]}
    engine_config = EngineConfig.load(config, overrides=overrides or None)
    plugins = load_plugins()
    owned: list[Any] = []
    store = objects.get("store")
    if store is None:
        store = build_store(engine_config, plugins)
        owned.append(store)
    dispatcher = objects.get("dispatcher")
    if dispatcher is None:
        dispatcher = build_dispatcher(engine_config, plugins)
        owned.append(dispatcher)
    sinks = build_sinks(engine_config, plugins)
    owned.extend(sinks)
    installed = node_registry(engine_config, plugins)
    registry: NodeRegistry = installed if explicit is None else ChainedRegistry(explicit, installed)
    return Assembled(
        engine_config, store, dispatcher, sinks, installed, registry, owned, engine_kwargs
    )
