"""qm-server: run, follow and answer Quartermaster flows over HTTP, and a page to see them.

``qm serve --graphs DIR [--config qm.toml]`` serves it; `create_app` builds the
ASGI app for embedding or tests. The HTTP layer reads events through the
`EventSource` interface (`InProcessEventLog` today).
"""

from qm_server.app import create_app
from qm_server.event_source import EventSource, InProcessEventLog, Subscription, follow
from qm_server.settings import ServerSettings, SettingsError

__all__ = [
    "EventSource",
    "InProcessEventLog",
    "ServerSettings",
    "SettingsError",
    "Subscription",
    "create_app",
    "follow",
]
