"""The plugin contract: pluggy hooks through which stores, dispatchers, node executors
and event sinks register, and the loader that discovers installed plugins.

A plugin module::

    from pydantic import BaseModel
    from quartermaster_engine.plugins import hookimpl

    class Settings(BaseModel):
        path: str = "flows.db"

    @hookimpl
    def qm_register_stores(register):
        register("mystore", lambda settings: MyStore(settings.path), config_model=Settings)

published in the plugin's pyproject.toml::

    [project.entry-points.quartermaster]
    mystore = "my_package.plugin"
"""

from quartermaster_engine.plugins.hookspecs import PROJECT, hookimpl, hookspec
from quartermaster_engine.plugins.registry import (
    NoSettings,
    PluginConflictError,
    PluginOrigin,
    Register,
    Registration,
    Registry,
    UnknownBackendError,
)

__all__ = [
    "PROJECT",
    "NoSettings",
    "PluginConflictError",
    "PluginOrigin",
    "Register",
    "Registration",
    "Registry",
    "UnknownBackendError",
    "hookimpl",
    "hookspec",
]
