"""Plugin module registered under the entry-point group 'quartermaster': the ``thread``
dispatcher."""

from __future__ import annotations

from typing import Any

from qm_dispatch_thread.dispatcher import ThreadDispatcher
from qm_dispatch_thread.errors import DispatcherShutdownError
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


@hookimpl
def qm_register_exports(register: Register) -> None:
    # 0.1.5's path: quartermaster_engine.dispatchers.thread_dispatcher.
    module = "quartermaster_engine.dispatchers.thread_dispatcher"
    for obj in (ThreadDispatcher, DispatcherShutdownError, ThreadDispatcherSettings):
        register(f"{module}:{obj.__name__}", _constant(obj), description=f"0.1.5's {obj.__name__}")


def _constant(obj: Any) -> Any:
    def get(_: object) -> Any:
        return obj

    return get
