"""The hooks a Quartermaster plugin implements.

Every hook receives a ``register`` callable and registers factories through it;
the engine calls the hooks once, when plugins load, and never on the hot path.
A plugin is a module (or object) with ``@hookimpl`` functions, published under
the entry-point group ``quartermaster``. See ``docs/plugin-hooks.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from quartermaster_engine.plugins.registry import Register

PROJECT = "quartermaster"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def qm_register_stores(register: Register) -> None:
    """Register execution stores: ``register(name, factory, config_model=..., description=...)``.

    ``factory(settings)`` returns a store implementing `ExecutionStore` (and
    `DurableStore` for crash recovery and cross-process resume). ``settings``
    is an instance of ``config_model`` built from the ``[store]`` section.
    """


@hookspec
def qm_register_dispatchers(register: Register) -> None:
    """Register dispatchers: ``register(name, factory, config_model=..., description=...)``.

    ``factory(settings)`` returns a `TaskDispatcher`, configured from the
    ``[dispatcher]`` section.
    """


@hookspec
def qm_register_node_executors(register: Register) -> None:
    """Register node executors: ``register(node_type, factory, config_model=..., description=...)``.

    ``node_type`` is the string of ``GraphNode.type`` (``"Static1"``,
    ``"acme.Classifier"``). ``factory(settings)`` returns a `NodeExecutor`;
    ``settings`` comes from the ``[nodes."<node_type>"]`` section.
    """


@hookspec
def qm_register_event_sinks(register: Register) -> None:
    """Register event sinks: ``register(name, factory, config_model=..., description=...)``.

    ``factory(settings)`` returns an object with ``emit(event)`` (and optionally
    ``close()``), configured from a ``[[sinks]]`` entry.
    """


@hookspec
def qm_register_commands(register: Register) -> None:
    """Register ``qm`` subcommands: ``register(name, factory, description=...)``.

    ``factory(settings)`` returns a `click.Command`; ``qm NAME`` runs it. Plugins
    are loaded for this only when ``NAME`` is not one of the core's commands.
    """


@hookspec
def qm_register_exports(register: Register) -> None:
    """Register objects a core module keeps importable under an old (0.1.5) path while
    they ship in the plugin's distribution: ``register("module:Name", factory)``, where
    ``factory(settings)`` returns the object. The core never imports a plugin
    distribution itself; it asks the registry (see `plugins.exports`).
    """


#: Hook name -> the kind of thing it registers.
HOOK_KINDS = {
    "qm_register_stores": "store",
    "qm_register_dispatchers": "dispatcher",
    "qm_register_node_executors": "node_executor",
    "qm_register_event_sinks": "event_sink",
    "qm_register_commands": "command",
    "qm_register_exports": "export",
}
