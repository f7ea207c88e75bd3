"""Plugin module registered under the entry-point group 'quartermaster': the ``thread``
dispatcher."""

from __future__ import annotations

from qm_dispatch_thread.dispatcher import ThreadDispatcher
from qm_dispatch_thread.settings import ThreadDispatcherSettings
from quartermaster_engine.plugins import Register, hookimpl


def create_dispatcher(settings: ThreadDispatcherSettings) -> ThreadDispatcher:
    """The ``thread`` dispatcher of a validated ``[dispatcher]`` section."""
    return ThreadDispatcher.from_settings(settings)


@hookimpl
def qm_register_dispatchers(register: Register) -> None:
    register(
        "thread",
        create_dispatcher,
        config_model=ThreadDispatcherSettings,
        description=(
            "blocking node executors in a pool of worker threads, with optional "
            "per-node-type limits"
        ),
    )
