"""qm-dispatch-thread: a thread-pool dispatcher for blocking node executors.

::

    from qm_dispatch_thread import ThreadDispatcher

    dispatcher = ThreadDispatcher(max_workers=16, type_limits={"acme.Scraper": 2})
    runner = FlowRunner(graph, registry, dispatcher=dispatcher)
    ...
    dispatcher.shutdown()
"""

from qm_dispatch_thread.dispatcher import ThreadDispatcher
from qm_dispatch_thread.errors import DispatcherShutdownError
from qm_dispatch_thread.settings import ThreadDispatcherSettings, default_max_workers

__version__ = "0.2.0"

__all__ = [
    "DispatcherShutdownError",
    "ThreadDispatcher",
    "ThreadDispatcherSettings",
    "default_max_workers",
]
