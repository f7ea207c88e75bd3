"""Secrets never appear where settings, URLs or errors are shown.

One rule for every place (`qm config show`, `qm serve`'s start-up line, the
server's ``/api/server``, configuration errors, store-unavailable errors):

- a URL's userinfo password is masked (``redis://user:pw@host`` becomes
  ``redis://user:***@host``);
- the value of every ``name=value`` pair whose name says it is a secret is masked,
  in URL query strings (``postgresql://u@h/db?password=pw``) and keyword strings
  (``host=h password=pw``) alike;
- a setting whose name says it is a secret (``password``, ``token``, ``api_key``,
  HTTP ``headers``, ...) is masked whole.

`redact_text` applies the first two to free text, `redact_url` is its name for one
URL, `redact_setting` adds the third for one setting and `redact_tree` for a whole
nested mapping (``config.model_dump()``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

# scheme://user:password@ : the password is everything up to the last '@' before the host.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):(?P<pw>[^\s/]*)@")
# name=value where the name starts a word (after ?, &, ;, a space, a quote, ...); the
# value runs to the next separator of a query string, a keyword string or a quote.
_PAIR = re.compile(r"(?P<name>(?<![\w.-])[A-Za-z_][\w.-]*)=(?P<value>[^&;#\s'\"<>,)]*)")
#: Setting names (the last part of a dotted key, any case) whose values are secrets.
SECRET_NAMES = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "api_key",
        "apikey",
        "access_key",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "signature",
        "sig",
    }
)
_SECRET_SUFFIXES = ("password", "_secret", "_token", "_key", "-key", "-token", "-secret")


def is_secret_name(key: str) -> bool:
    """Whether a setting's or parameter's name (``store.password``, ``api_key``,
    ``sslpassword``) says its value is a secret. HTTP headers
    (``sinks.otel.headers``, ``....headers.authorization``) count as secrets too:
    they carry API keys and bearer tokens."""
    parts = key.lower().split(".")
    last = parts[-1]
    if "headers" in parts:
        return True
    return last in SECRET_NAMES or last.endswith(_SECRET_SUFFIXES)


def _mask_pair(match: re.Match[str]) -> str:
    if match["value"] and is_secret_name(match["name"]):
        return f"{match['name']}={MASK}"
    return match[0]


def redact_text(text: str) -> str:
    """``text`` with the password of every URL in it, and the value of every
    secret-named ``name=value`` pair (a query parameter, a keyword), replaced by ``***``."""
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", text)
    if "=" in text:
        text = _PAIR.sub(_mask_pair, text)
    return text


def redact_url(url: str) -> str:
    """``url`` fit for messages: its password and secret query parameters masked."""
    return redact_text(url)


def redact_setting(key: str, value: Any) -> Any:
    """A setting's value fit to print: secrets masked, URL passwords hidden."""
    if value is None or value == "":
        return value
    if is_secret_name(key):
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return redact_tree(value, key)
    if isinstance(value, list | tuple):
        return [redact_setting(key, v) for v in value]
    return value


def redact_tree(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping of settings (``config.model_dump(mode="json")``) fit to show:
    each value redacted by `redact_setting` under its dotted key."""
    return {k: redact_setting(f"{prefix}.{k}" if prefix else str(k), v) for k, v in value.items()}
