"""How a server is set up: graphs folder, engine configuration, token, limits."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The environment variable holding the bearer token.
TOKEN_ENV = "QM_SERVER_TOKEN"
#: A token is at least 16 characters of a URL- and cookie-safe alphabet
#: (``python -c "import secrets; print(secrets.token_urlsafe(32))"`` makes one).
_TOKEN = re.compile(r"^[A-Za-z0-9._~-]{16,}$")


class SettingsError(ValueError):
    """The server cannot start as asked."""


@dataclass(frozen=True)
class ServerSettings:
    """A server's settings. ``config`` is what `EngineConfig.load` accepts."""

    graphs_dir: Path
    config: Any = None
    token: str | None = None
    allow_inline_graphs: bool = False
    max_body_bytes: int = 1024 * 1024
    heartbeat_seconds: float = 15.0

    def __post_init__(self) -> None:
        if self.token is not None and not _TOKEN.match(self.token):
            raise SettingsError(
                "the token must be at least 16 characters of letters, digits, '.', '_', '~' or '-'"
            )
        if not self.graphs_dir.is_dir():
            raise SettingsError(f"graphs folder {self.graphs_dir} is not a folder")


def load_token(token_file: Path | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The token from ``token_file`` if given, else from ``$QM_SERVER_TOKEN``, else None."""
    if token_file is not None:
        try:
            text = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(f"cannot read token file {token_file}: {exc.strerror}") from None
        if not text:
            raise SettingsError(f"token file {token_file} is empty")
        return text
    value = (os.environ if environ is None else environ).get(TOKEN_ENV, "").strip()
    return value or None


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (``localhost``, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(host: str, token: str | None) -> None:
    """Refuse a non-loopback address without a token."""
    if token is None and not is_loopback(host):
        raise SettingsError(
            f"refusing to listen on {host} without a token: set ${TOKEN_ENV} or --token-file "
            "(only a loopback address may go without one)"
        )
