"""0.1.5's import path of `ThreadDispatcher`, which now ships in its own distribution.

::

    from quartermaster_engine.dispatchers.thread_dispatcher import ThreadDispatcher

    dispatcher = ThreadDispatcher(max_workers=8)
    ...
    dispatcher.shutdown()

keeps working when ``qm-dispatch-thread`` is installed: its names are found
through the plugin registry (see `plugins.exports`); without it, the import
fails with an `ImportError` that says what to install.
"""

from __future__ import annotations

from typing import Any

from quartermaster_engine.plugins.exports import exported

__all__ = ["DispatcherShutdownError", "ThreadDispatcher", "ThreadDispatcherSettings"]  # noqa: F822


def __getattr__(name: str) -> Any:
    if name in __all__:
        return exported(
            __name__,
            name,
            f"{name} now ships in its own distribution: pip install qm-dispatch-thread",
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
