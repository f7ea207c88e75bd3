"""Plugin discovery: load every entry point of group ``quartermaster`` on its own.

A plugin that fails to import (or whose hook raises) is recorded with its entry
point, distribution, version and error, reported by ``qm plugins`` and by a
warning, and never stops the engine from starting, unless ``QM_STRICT_PLUGINS=1``.

Environment:

- ``QM_LOAD_PLUGINS``: comma-separated allow-list of distributions (or entry-point
  names) to load; set but empty loads none. Unset loads all. A name that is no
  installed plugin raises `PluginLoadError` naming it (strict mode or not).
- ``QM_DISABLE_PLUGINS``: comma-separated block-list, same names.
- ``QM_STRICT_PLUGINS=1``: any plugin error raises `PluginLoadError`.

The core's own plugin (memory store, sync and async dispatchers, Start1/End1,
console and jsonl sinks) always loads.

Extension hooks: a plugin module may declare hookspecs of its own (functions
marked with ``quartermaster_engine.plugins.hookspec``, in the plugin module or in
a module or class it exposes as ``hookspecs``), named ``qm_register_<kind>s`` and
taking the same ``register`` callable. Other plugins implement them like the
core hooks; their registrations land in ``PluginSet.registry("<kind>")``. This is
how a node pack lets other packages add, say, LLM providers.
"""

from __future__ import annotations

import os
import threading
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import importlib_metadata
import pluggy
from pydantic import BaseModel

from quartermaster_engine.plugins import builtin, hookspecs
from quartermaster_engine.plugins.registry import (
    NoSettings,
    PluginConflictError,
    PluginOrigin,
    Registration,
    Registry,
)

ENTRY_POINT_GROUP = "quartermaster"
CORE_DISTRIBUTION = "quartermaster-engine"


class PluginLoadError(RuntimeError):
    """A plugin failed to load in strict mode."""


class PluginWarning(UserWarning):
    """A plugin failed to load; the engine goes on without it."""


@dataclass
class PluginInfo:
    """One plugin as discovered: where it comes from, what it provides, what went wrong."""

    name: str
    distribution: str
    version: str
    module: str
    hooks: list[str] = field(default_factory=list)
    provides: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    @property
    def origin(self) -> PluginOrigin:
        return PluginOrigin(self.name, self.distribution, self.version)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "hooks": self.hooks,
            "provides": self.provides,
            "error": self.error,
        }


class PluginNodeRegistry:
    """A `NodeRegistry` over the node executors plugins registered.

    Executors are created on first use, with settings from ``settings``
    (``{node_type: {key: value}}``) validated by the registration's model.
    """

    def __init__(
        self,
        registry: Registry,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        validate: Callable[[Registration, Mapping[str, Any]], BaseModel] | None = None,
    ) -> None:
        self._registry = registry
        self._settings = dict(settings or {})
        self._validate = validate
        self._executors: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get_executor(self, node_type: str) -> Any:
        executor = self._executors.get(node_type)
        if executor is not None or node_type not in self._registry:
            return executor
        with self._lock:
            executor = self._executors.get(node_type)
            if executor is None:
                registration = self._registry.get(node_type)
                raw = self._settings.get(node_type, {})
                if self._validate is not None:
                    settings = self._validate(registration, raw)
                else:
                    settings = registration.config_model.model_validate(raw)
                executor = registration.create(settings)
                self._executors[node_type] = executor
        return executor

    def list_types(self) -> list[str]:
        return self._registry.names()


@dataclass
class PluginSet:
    """Everything the installed plugins provide."""

    plugins: list[PluginInfo]
    stores: Registry
    dispatchers: Registry
    node_executors: Registry
    event_sinks: Registry
    #: ``qm`` subcommands plugins add.
    commands: Registry = field(default_factory=lambda: Registry("command"))
    #: Objects core modules keep importable under old paths (see `plugins.exports`).
    exports: Registry = field(default_factory=lambda: Registry("export"))
    #: Registries of extension hooks declared by plugins, by kind.
    extensions: dict[str, Registry] = field(default_factory=dict)

    def registry(self, kind: str) -> Registry:
        """The registrations of one kind (``store``, ..., or an extension's kind)."""
        core = {
            "store": self.stores,
            "dispatcher": self.dispatchers,
            "node_executor": self.node_executors,
            "event_sink": self.event_sinks,
            "command": self.commands,
            "export": self.exports,
        }
        found = core.get(kind) or self.extensions.get(kind)
        return found if found is not None else Registry(kind)

    @property
    def errors(self) -> list[PluginInfo]:
        """Plugins that failed to load or register."""
        return [p for p in self.plugins if p.error is not None]

    def node_registry(
        self, settings: Mapping[str, Mapping[str, Any]] | None = None
    ) -> PluginNodeRegistry:
        """A node registry with every installed node executor."""
        return PluginNodeRegistry(self.node_executors, settings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "plugins": [p.to_dict() for p in self.plugins],
            "errors": [
                {"plugin": p.name, "distribution": p.distribution, "error": p.error}
                for p in self.errors
            ],
        }


def _names(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-")


def _selected(dist: str, ep_name: str, allow: set[str] | None, block: set[str]) -> bool:
    keys = {_normalize(dist), _normalize(ep_name)}
    if allow is not None and not keys & {_normalize(n) for n in allow}:
        return False
    return not keys & {_normalize(n) for n in block}


def _short_error(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


class _Loader:
    def __init__(self, environ: Mapping[str, str], strict: bool) -> None:
        self.environ = environ
        self.strict = strict
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.plugins: dict[str, object] = {}
        # Hook name -> kind, for the core's hooks and the ones plugins declare.
        self.kinds: dict[str, str] = dict(hookspecs.HOOK_KINDS)
        self.extension_specs: dict[str, PluginInfo] = {}
        self.spec_holders: dict[str, Any] = {}
        self.registries: dict[str, Registry] = {}

    def fail(self, info: PluginInfo, message: str, exc: BaseException | None = None) -> None:
        info.error = message
        text = f"plugin {info.name!r} from {info.distribution} {info.version} failed: {message}"
        if self.strict:
            raise PluginLoadError(f"{text} (QM_STRICT_PLUGINS is on)") from exc
        warnings.warn(f"{text}; the engine goes on without it", PluginWarning, stacklevel=4)

    def add(self, info: PluginInfo, plugin: object) -> None:
        key = f"{info.distribution}:{info.name}"
        self.infos[key] = info
        self.plugins[key] = plugin
        holders = [plugin]
        declared = getattr(plugin, "hookspecs", None)
        if declared is not None and declared is not hookspecs:
            holders.append(declared)
        for holder in holders:
            for name in dir(holder):
                value = getattr(holder, name, None)
                if callable(value) and hasattr(value, f"{hookspecs.PROJECT}_spec"):
                    self.extension_specs.setdefault(name, info)
                    self.spec_holders.setdefault(key, holder)
        info.hooks = sorted(
            name
            for name in dir(plugin)
            if callable(getattr(plugin, name, None))
            and hasattr(getattr(plugin, name), f"{hookspecs.PROJECT}_impl")
        )

    def register_all(self) -> None:
        """Add every plugin's extension hookspecs, then the plugins themselves; a hook
        no spec declares is a plugin error."""
        for key, holder in sorted(self.spec_holders.items()):
            if self.infos[key].error is None:
                self.pm.add_hookspecs(holder)
        for name in self.extension_specs:
            self.kinds.setdefault(name, _kind_of(name))
        for key, plugin in self.plugins.items():
            info = self.infos[key]
            if info.error is not None:
                continue
            unknown = [h for h in info.hooks if h not in self.kinds]
            if unknown:
                self.fail(
                    info,
                    f"unknown hook {', '.join(unknown)}; known: {', '.join(sorted(self.kinds))}",
                )
                continue
            self.pm.register(plugin, name=key)

    def discover(self) -> None:
        allow = _names(self.environ.get("QM_LOAD_PLUGINS"))
        block = _names(self.environ.get("QM_DISABLE_PLUGINS")) or set()
        seen: set[tuple[str, str]] = set()
        entry_points = sorted(
            importlib_metadata.entry_points(group=ENTRY_POINT_GROUP),
            key=lambda ep: (ep.dist.name if ep.dist else "", ep.name),
        )
        installed = {_normalize(CORE_DISTRIBUTION): CORE_DISTRIBUTION, "core": "core"}
        for ep in entry_points:
            dist = ep.dist.name if ep.dist else "unknown"
            version = ep.dist.version if ep.dist else "?"
            installed.setdefault(_normalize(dist), dist)
            installed.setdefault(_normalize(ep.name), ep.name)
            if (dist, ep.name) in seen:
                continue  # the same distribution found twice on sys.path
            seen.add((dist, ep.name))
            if _normalize(dist) == CORE_DISTRIBUTION or not _selected(dist, ep.name, allow, block):
                continue
            info = PluginInfo(ep.name, dist, version, ep.value)
            try:
                plugin = ep.load()
            except Exception as exc:
                self.infos[f"{dist}:{ep.name}"] = info
                self.fail(info, _short_error(exc), exc)
                continue
            self.add(info, plugin)
        unknown = sorted(n for n in allow or () if _normalize(n) not in installed)
        if unknown:
            # A typo here would silently run the core alone: refuse, whatever the mode.
            names = ", ".join(sorted({v for k, v in installed.items() if v != "core"}))
            raise PluginLoadError(
                f"QM_LOAD_PLUGINS names {', '.join(repr(n) for n in unknown)}, which is no "
                f"installed plugin; installed: {names}"
            )

    def collect(self) -> None:
        for hook_name, kind in self.kinds.items():
            self.registries.setdefault(kind, Registry(kind))
            hook = getattr(self.pm.hook, hook_name, None)
            if hook is None:
                continue
            # Registration order: the core first, then plugins in name order.
            for impl in hook.get_hookimpls():
                info = self.infos[impl.plugin_name]
                if info.error is not None:
                    continue
                register = self._register_for(info, kind)
                try:
                    impl.function(register=register)
                except PluginConflictError:
                    raise  # an error whatever the mode: the name is ambiguous
                except Exception as exc:
                    self.fail(info, f"{hook_name} raised {_short_error(exc)}", exc)

    def _register_for(self, info: PluginInfo, kind: str) -> Any:
        registry = self.registries.setdefault(kind, Registry(kind))

        def register(
            name: str,
            factory: Callable[..., Any],
            *,
            config_model: type[BaseModel] | None = None,
            description: str = "",
        ) -> None:
            if not isinstance(name, str) or not name:
                raise ValueError(f"a {kind} needs a non-empty name, got {name!r}")
            if not callable(factory):
                raise TypeError(f"the factory of {kind} {name!r} is not callable")
            registry.add(
                Registration(
                    kind=kind,
                    name=name,
                    factory=factory,
                    config_model=config_model or NoSettings,
                    description=description or (factory.__doc__ or "").strip().split("\n")[0],
                    origin=info.origin,
                )
            )
            info.provides.setdefault(kind, []).append(name)

        return register


def _kind_of(hook_name: str) -> str:
    """``qm_register_llm_providers`` -> ``llm_provider``."""
    kind = hook_name.removeprefix("qm_register_")
    return kind[:-1] if kind.endswith("s") else kind


_cache: dict[tuple[str | None, str | None, bool], PluginSet] = {}
_cache_lock = threading.Lock()


def _strict(environ: Mapping[str, str]) -> bool:
    return environ.get("QM_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes", "on"}


def load_plugins(*, refresh: bool = False, environ: Mapping[str, str] | None = None) -> PluginSet:
    """Discover and load the installed plugins (cached per process and environment).

    Raises `PluginConflictError` when two plugins register the same name, and
    `PluginLoadError` for any plugin error in strict mode.
    """
    env = os.environ if environ is None else environ
    key = (env.get("QM_LOAD_PLUGINS"), env.get("QM_DISABLE_PLUGINS"), _strict(env))
    with _cache_lock:
        if not refresh and key in _cache:
            return _cache[key]
        loader = _Loader(env, strict=key[2])
        core_version = importlib_metadata.version(CORE_DISTRIBUTION)
        loader.add(PluginInfo("core", CORE_DISTRIBUTION, core_version, builtin.__name__), builtin)
        loader.discover()
        loader.register_all()
        loader.collect()
        plugin_set = PluginSet(
            plugins=list(loader.infos.values()),
            stores=loader.registries["store"],
            dispatchers=loader.registries["dispatcher"],
            node_executors=loader.registries["node_executor"],
            event_sinks=loader.registries["event_sink"],
            commands=loader.registries["command"],
            exports=loader.registries["export"],
            extensions={
                kind: registry
                for kind, registry in loader.registries.items()
                if kind not in hookspecs.HOOK_KINDS.values()
            },
        )
        _cache[key] = plugin_set
        return plugin_set
