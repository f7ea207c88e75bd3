"""Secrets never appear where settings are printed or logged.

`redact_text` replaces the password of every URL in a text (``redis://user:pw@host``
becomes ``redis://user:***@host``); `redact_setting` also hides the whole value of a
setting whose name says it is a secret (``password``, ``token``, ``api_key``, ...).
`qm config show`, configuration errors and the stores' own messages go through them.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# scheme://user:password@ : the password is everything up to the last '@' before the host.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):(?P<pw>[^\s/]*)@")
#: Setting names (the last part of a dotted key, any case) whose values are secrets.
SECRET_NAMES = frozenset(
    {"password", "passwd", "pass", "secret", "token", "api_key", "apikey", "access_key"}
)


def redact_text(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    if "://" not in text:
        return text
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", text)


def is_secret_name(key: str) -> bool:
    """Whether a setting's name (``store.password``, ``api_key``) says it is a secret.
    HTTP headers (``sinks.otel.headers``, ``....headers.authorization``) count as
    secrets too: they carry API keys and bearer tokens."""
    parts = key.lower().split(".")
    last = parts[-1]
    if "headers" in parts or last == "authorization":
        return True
    return last in SECRET_NAMES or last.endswith(("_password", "_secret", "_token", "_key"))


def redact_setting(key: str, value: Any) -> Any:
    """A setting's value fit to print: secrets masked, URL passwords hidden."""
    if value is None or value == "":
        return value
    if is_secret_name(key):
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [redact_setting(key, v) for v in value]
    return value
