"""`EngineConfig`: which store, dispatcher and sinks a runner is built from, and its limits.

Shape (``qm.toml``, or the ``[tool.quartermaster]`` table of ``pyproject.toml``)::

    [store]
    name = "sqlite"        # a registered store; its other keys are its settings
    path = "flows.db"
    [dispatcher]
    name = "thread"
    max_workers = 8
    [[sinks]]
    name = "jsonl"
    path = "events.jsonl"
    [engine]
    lease_seconds = "10s"  # the lease of flows and limit slots (default 30 s)
    [limits]
    max_visits = 100
    [budgets]              # per flow: quartermaster_engine.budgets, docs/limits.md
    max_tokens = 100000
    [nodes."Instruction1"]  # settings of one node type's executor
    temperature = 0.2

Precedence, lowest first: defaults (``memory`` store, ``sync`` dispatcher, no
sinks), the config file, the environment, explicit overrides. A layer that names
a different backend replaces that section instead of merging into it.

Environment: ``QM_CONFIG`` (the file to read when none is given), ``QM_STORE``
(the store's name), ``QM_STORE__<KEY>`` (one of its settings), likewise
``QM_DISPATCHER`` / ``QM_DISPATCHER__<KEY>``, ``QM_ENGINE__<KEY>``, ``QM_LIMITS__<KEY>``,
``QM_BUDGETS__<KEY>``,
``QM_NODES__<NodeType>__<KEY>``, and ``QM_SINKS`` (a JSON list of sink tables).
Keys are lower-cased; values are strings, or JSON when they start with ``{``
or ``[``; each backend's settings model converts them.

A config names registered backends only: it never imports a dotted path.
"""

from __future__ import annotations

import copy
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from quartermaster_engine.budgets import BudgetsConfig
from quartermaster_engine.durations import parse_duration
from quartermaster_engine.key_tables import check_key_tables
from quartermaster_engine.redaction import redact_setting
from quartermaster_graph.data_limits import data_too_deep, too_deep_message

CONFIG_FILE = "qm.toml"
PYPROJECT = "pyproject.toml"
DEFAULTS: dict[str, Any] = {
    "store": {"name": "memory"},
    "dispatcher": {"name": "sync"},
    "sinks": [],
    "limits": {"max_visits": 100},
    "nodes": {},
}
_BACKEND_SECTIONS = ("store", "dispatcher")


class ConfigError(ValueError):
    """The configuration cannot be read or does not validate."""


class BackendConfig(BaseModel):
    """A backend section: its registered ``name`` plus the backend's own settings."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)

    @property
    def settings(self) -> dict[str, Any]:
        """The section without ``name``: what the backend's settings model validates."""
        return dict(self.model_extra or {})


class KeyLimit(BaseModel):
    """``[limits."<key>"]``: a limit every process sharing the store obeys for the
    activations that declare ``<key>`` (or a key its ``*`` pattern matches)."""

    model_config = ConfigDict(extra="forbid")

    #: Activations of the key running at once, across processes.
    max_in_flight: int | None = Field(default=None, ge=1)
    #: Activations of the key started per ``per`` (a sliding window), across processes.
    max_requests: int | None = Field(default=None, ge=1)
    #: LLM tokens (input + output) of the key's activations per ``per``, across
    #: processes: an activation starts only while fewer were used in the window.
    max_tokens: int | None = Field(default=None, ge=1)
    #: The window of ``max_requests`` and ``max_tokens``: seconds, or a duration
    #: like 1m, 1h.
    per: float = Field(default=60.0, gt=0)

    @field_validator("per", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value).total_seconds() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _some_limit(self) -> KeyLimit:
        if self.max_in_flight is None and self.max_requests is None and self.max_tokens is None:
            raise ValueError("a key's table needs max_in_flight, max_requests or max_tokens")
        return self


class EngineSettings(BaseModel):
    """``[engine]``: settings of the engine itself, the same in every process built
    from the configuration (``qm`` commands, ``qm worker``, `Engine.from_config`)."""

    model_config = ConfigDict(extra="forbid")

    #: How long a flow's lease and a limit key's slot or waiter mark live unless
    #: renewed (renewed every third of it): seconds, or a duration like 10s. A
    #: SIGKILLed holder's flow can be taken over, and its slots free, within this
    #: time. None: the engine's default (30 s).
    lease_seconds: float | None = Field(default=None, gt=0)

    @field_validator("lease_seconds", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value).total_seconds() if isinstance(value, str) else value


class LimitsConfig(BaseModel):
    """Engine limits: ``max_visits``, and a `KeyLimit` table per key or key pattern
    (``[limits."llm:openai:*"]``; docs/limits.md)."""

    model_config = ConfigDict(extra="allow")

    #: How many times one node may run in one flow (a node's metadata
    #: ``max_visits`` overrides it); None for no limit.
    max_visits: int | None = Field(default=100, ge=1)
    __pydantic_extra__: dict[str, KeyLimit] = Field(init=False)

    @model_validator(mode="before")
    @classmethod
    def _tables(cls, data: Any) -> Any:
        return check_key_tables(data, set(cls.model_fields), "limits")

    @property
    def keys(self) -> dict[str, KeyLimit]:
        """The limits per key or key pattern, in configuration order."""
        return dict(self.__pydantic_extra__ or {})


class EngineConfig(BaseModel):
    """The configuration a runner is assembled from. Load it with `EngineConfig.load`."""

    model_config = ConfigDict(extra="forbid")

    store: BackendConfig = Field(default_factory=lambda: BackendConfig(name="memory"))
    dispatcher: BackendConfig = Field(default_factory=lambda: BackendConfig(name="sync"))
    sinks: list[BackendConfig] = Field(default_factory=list)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    budgets: BudgetsConfig | None = None
    nodes: dict[str, dict[str, Any]] = Field(default_factory=dict)

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)
    _config_dir: Path | None = PrivateAttr(default=None)

    @property
    def config_dir(self) -> Path:
        """The folder relative paths in settings are resolved against."""
        return self._config_dir if self._config_dir is not None else Path.cwd()

    def source_of(self, key: str) -> str:
        """Where a dotted key (``store.path``) got its value: a file, the environment,
        an override, or "default"."""
        while key:
            if key in self._sources:
                return self._sources[key]
            key = key.rpartition(".")[0]
        return "default"

    def describe(self) -> list[tuple[str, Any, str]]:
        """Every effective value as (dotted key, value, source), secrets masked
        (`quartermaster_engine.redaction`): fit to print."""
        rows: list[tuple[str, Any, str]] = []

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict) and value:
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else k, v)
            elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                for i, v in enumerate(value):
                    walk(f"{prefix}[{i}]", v)
            else:
                shown = redact_setting(prefix, value)
                rows.append((prefix, shown, self.source_of(prefix.split("[")[0])))

        walk("", self.model_dump(mode="json"))
        return rows

    @classmethod
    def load(
        cls,
        source: EngineConfig | Mapping[str, Any] | str | Path | None = None,
        *,
        overrides: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> EngineConfig:
        """Build the effective configuration.

        ``source``: an `EngineConfig` (used as it is, then overrides), a dict, a
        path to a TOML file (``qm.toml``, or a ``pyproject.toml`` whose
        ``[tool.quartermaster]`` table is used), or None to read ``$QM_CONFIG``,
        else ``qm.toml``, else ``pyproject.toml`` in ``cwd``.
        """
        env = os.environ if environ is None else environ
        here = cwd if cwd is not None else Path.cwd()
        if isinstance(source, EngineConfig):
            if not overrides:
                return source
            merged = source.model_dump(mode="json", exclude_none=False)
            sources: dict[str, str] = dict(source._sources)
            _merge(merged, dict(overrides), sources, "override")
            return _validated(merged, sources, source._config_dir, "overrides")
        merged = copy.deepcopy(DEFAULTS)
        sources = {}
        config_dir: Path | None = None
        label = "configuration"
        if isinstance(source, Mapping):
            _merge(merged, dict(source), sources, "dict")
            label = "the configuration dict"
        else:
            path = _find_file(source, env, here)
            if path is not None:
                data, label = _read_file(path)
                _merge(merged, data, sources, label)
                config_dir = path.parent.resolve()
        _merge(merged, _from_environment(env), sources, "")
        if overrides:
            _merge(merged, dict(overrides), sources, "override")
        return _validated(merged, sources, config_dir, label)


def _validated(
    data: dict[str, Any], sources: dict[str, str], config_dir: Path | None, label: str
) -> EngineConfig:
    try:
        config = EngineConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            where = sources.get(key) or sources.get(key.split(".")[0]) or label
            problems.append(f"{key}: {err['msg']} (from {where})")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
    config._sources = sources
    config._config_dir = config_dir
    return config


def _find_file(source: str | Path | None, env: Mapping[str, str], cwd: Path) -> Path | None:
    origin = ""
    if source is None and env.get("QM_CONFIG"):
        source, origin = env["QM_CONFIG"], " (from QM_CONFIG)"
    if source is not None:
        path = Path(source)
        path = path if path.is_absolute() else cwd / path
        if path.is_dir():
            raise ConfigError(f"config file {path}{origin} is a folder; name a TOML file")
        if not path.exists():
            # Anything else that reads as a file will do: /dev/null is an empty config.
            raise ConfigError(f"config file {path}{origin} does not exist")
        return path
    for name in (CONFIG_FILE, PYPROJECT):
        candidate = cwd / name
        if candidate.is_file():
            if name == PYPROJECT and "quartermaster" not in _read_toml(candidate).get("tool", {}):
                continue
            return candidate
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); TOML files are UTF-8"
        ) from None
    except RecursionError:
        raise ConfigError(f"{path}: {too_deep_message()}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    if data_too_deep(data):
        raise ConfigError(f"{path}: {too_deep_message()}")
    return data


def _read_file(path: Path) -> tuple[dict[str, Any], str]:
    data = _read_toml(path)
    if path.name == PYPROJECT:
        section = data.get("tool", {}).get("quartermaster")
        if not isinstance(section, dict):
            raise ConfigError(f"{path} has no [tool.quartermaster] table")
        return section, f"{path.name} [tool.quartermaster]"
    return data, path.name


def _env_value(raw: str, var: str) -> Any:
    text = raw.strip()
    if text[:1] in "[{":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{var}: invalid JSON {raw[:80]!r}: {exc}") from None
        except RecursionError:
            raise ConfigError(f"{var}: the JSON value is {too_deep_message()}") from None
        if data_too_deep(value):
            raise ConfigError(f"{var}: the JSON value is {too_deep_message()}")
        return value
    return raw


def _from_environment(env: Mapping[str, str]) -> dict[str, Any]:
    """The configuration layer of ``QM_*`` variables (each value labelled by its variable)."""
    layer: dict[str, Any] = {}
    for var in sorted(env):
        if not var.startswith("QM_"):
            continue
        parts = var[3:].split("__")
        section = parts[0].lower()
        value = _env_value(env[var], var)
        tagged = _Tagged(value, f"environment ({var})")
        if section in _BACKEND_SECTIONS:
            target = layer.setdefault(section, {})
            if len(parts) == 1:
                target["name"] = tagged
            elif len(parts) == 2:
                target[parts[1].lower()] = tagged
        elif section in ("engine", "limits", "budgets") and len(parts) == 2:
            layer.setdefault(section, {})[parts[1].lower()] = tagged
        elif section == "nodes" and len(parts) == 3:
            layer.setdefault("nodes", {}).setdefault(parts[1], {})[parts[2].lower()] = tagged
        elif section == "sinks" and len(parts) == 1:
            layer["sinks"] = tagged
    return layer


class _Tagged:
    """A value carrying its own source label (used for environment variables)."""

    __slots__ = ("label", "value")

    def __init__(self, value: Any, label: str) -> None:
        self.value = value
        self.label = label


def _merge(
    base: dict[str, Any], layer: dict[str, Any], sources: dict[str, str], label: str
) -> None:
    """Merge ``layer`` into ``base``, recording the source of each value set."""

    def put(target: dict[str, Any], key: str, value: Any, path: str) -> None:
        source = label
        if isinstance(value, _Tagged):
            value, source = value.value, value.label
        if isinstance(value, dict):
            current = target.get(key)
            new_backend = (
                path in _BACKEND_SECTIONS
                and "name" in value
                and isinstance(current, dict)
                and _plain(value["name"]) != current.get("name")
            )
            if new_backend or not isinstance(current, dict):
                target[key] = {}
                for stale in [s for s in sources if s == path or s.startswith(path + ".")]:
                    del sources[stale]
            for k, v in value.items():
                put(target[key], str(k), v, f"{path}.{k}")
            return
        target[key] = value
        sources[path] = source

    for key, value in layer.items():
        put(base, key, value, key)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, _Tagged) else value
