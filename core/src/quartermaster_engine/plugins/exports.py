"""Old import paths of objects that now ship in plugin distributions.

0.1.5 users import ``SQLiteStore`` from ``quartermaster_engine.stores.sqlite_store``
and ``ThreadDispatcher`` from ``quartermaster_engine.dispatchers.thread_dispatcher``;
those objects now live in qm-store-sqlite and qm-dispatch-thread. The core never
imports a plugin distribution: each such module resolves its names through the
plugin registry (a module ``__getattr__`` calling `exported`), and the plugin
registers them with the ``qm_register_exports`` hook under ``"module:Name"``.
Without the plugin, the import fails with an `ImportError` saying what to install.
"""

from __future__ import annotations

from typing import Any

from quartermaster_engine.plugins.loader import load_plugins


def exported(module: str, name: str, missing: str) -> Any:
    """The object a plugin registered as ``module:name``; `ImportError` with the
    message ``missing`` (what to install) when no installed plugin did."""
    exports = load_plugins().exports
    key = f"{module}:{name}"
    if key not in exports:
        raise ImportError(missing, name=module)
    return exports.get(key).create()
