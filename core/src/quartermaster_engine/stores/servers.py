"""Why a connection to a store's server failed, in the operating system's words
(the server's URL is named through `quartermaster_engine.redaction.redact_url`)."""

from __future__ import annotations

import os
import socket


def os_reason(exc: BaseException) -> str:
    """`` (Connection refused)``, `` (host name not resolved)`` and the like, from the
    OS error that is ``exc`` or behind it; empty when there is none."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            break
        if isinstance(seen, socket.gaierror):
            return " (host name not resolved)"
        if isinstance(seen, OSError) and seen.errno and seen.errno > 0:
            return f" ({os.strerror(seen.errno)})"
        seen = seen.__cause__ or seen.__context__
    return ""
