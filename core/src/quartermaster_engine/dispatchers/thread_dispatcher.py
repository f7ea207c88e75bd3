"""0.1.5's import path of `ThreadDispatcher`, which now ships in its own distribution.

::

    from quartermaster_engine.dispatchers.thread_dispatcher import ThreadDispatcher

    dispatcher = ThreadDispatcher(max_workers=8)
    ...
    dispatcher.shutdown()

keeps working when ``qm-dispatch-thread`` is installed; without it, the import
fails with an `ImportError` that says what to install.
"""

from __future__ import annotations

try:
    from qm_dispatch_thread import (
        DispatcherShutdownError,
        ThreadDispatcher,
        ThreadDispatcherSettings,
    )
except ModuleNotFoundError as exc:
    if exc.name != "qm_dispatch_thread":
        raise  # something qm-dispatch-thread itself needs is missing: show that
    raise ImportError(
        "ThreadDispatcher now ships in its own distribution: pip install qm-dispatch-thread",
        name=__name__,
    ) from exc

__all__ = ["DispatcherShutdownError", "ThreadDispatcher", "ThreadDispatcherSettings"]
