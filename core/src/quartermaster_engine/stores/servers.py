"""Naming a store's server in messages: the URL without its password, and why a
connection failed in the operating system's words."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, fit for error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    # From the text, not parts.port: a malformed port must still be shown, hidden password.
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


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
