"""Node executors from modules of the project's own (``qm worker -p MODULE``).

A module given with ``-p`` (or listed in the dispatcher's ``modules`` setting, or
in ``$QM_WORKER_MODULES``, comma-separated) defines the same function a plugin
does, so it can later be published as one unchanged::

    # my_nodes.py
    from quartermaster_engine.plugins import Register, hookimpl

    @hookimpl  # optional here: the worker calls the function by its name
    def qm_register_node_executors(register: Register) -> None:
        register("acme.Classify", lambda settings: Classify())

The current directory is importable, as for ``celery -A``.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel

from quartermaster_engine.config import ConfigError
from quartermaster_engine.plugins.registry import NoSettings, PluginOrigin, Registration, Registry

#: Modules of node executors a worker imports, besides its settings' ``modules``.
MODULES_ENV = "QM_WORKER_MODULES"


def module_names(configured: Iterable[str], environ: dict[str, str] | None = None) -> list[str]:
    """The configured modules, then those of ``$QM_WORKER_MODULES``, each once."""
    env = os.environ if environ is None else environ
    names = [*configured, *(n.strip() for n in env.get(MODULES_ENV, "").split(","))]
    return list(dict.fromkeys(n for n in names if n))


def load_executor_modules(names: Iterable[str]) -> Registry:
    """A registry of the node executors the modules register. Raises `ConfigError`
    naming the module that cannot be imported or has no registering function."""
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    registry = Registry("node_executor")
    for name in names:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"cannot import node executor module {name!r}: {exc}") from exc
        hook = getattr(module, "qm_register_node_executors", None)
        if not callable(hook):
            raise ConfigError(
                f"module {name!r} ({module.__file__}) has no qm_register_node_executors"
                "(register) function: a -p module registers its executors with it"
            )
        hook(register=_register_into(registry, PluginOrigin(name, "module", name)))
    return registry


def _register_into(registry: Registry, origin: PluginOrigin) -> Callable[..., None]:
    def register(
        name: str,
        factory: Callable[..., Any],
        *,
        config_model: type[BaseModel] | None = None,
        description: str = "",
    ) -> None:
        registry.add(
            Registration(
                kind="node_executor",
                name=name,
                factory=factory,
                config_model=config_model or NoSettings,
                description=description,
                origin=origin,
            )
        )

    return register
