"""Small pieces the providers share: per-event-loop clients, JSON helpers, schemas."""

from __future__ import annotations

import asyncio
import json
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import SecretStr

C = TypeVar("C")

#: Name of the forced tool / JSON property used to constrain a decision.
CHOICE_TOOL = "choose"
CHOICE_FIELD = "choice"


class PerLoop(Generic[C]):
    """One client per event loop: SDK async clients hold connection pools bound to the
    loop that created them, and the engine may run flows on several loops (a script's
    per-thread loop, the background loop used inside notebooks, the caller's loop)."""

    def __init__(self, make: Callable[[], C]) -> None:
        self._make = make
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, C] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def get(self) -> C:
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.get(loop)
            if client is None:
                client = self._make()
                self._clients[loop] = client
            return client


class LoopRelay:
    """Hands text produced in a worker thread to ``on_token`` on the event loop.

    Tokens queue up and one scheduled drain delivers all that are waiting, instead of
    one cross-thread wake-up per token.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, on_token: Callable[[str], None]) -> None:
        self._loop = loop
        self._on_token = on_token
        self._pending: deque[str] = deque()
        self._scheduled = False
        self._lock = threading.Lock()

    def __call__(self, token: str) -> None:
        with self._lock:
            self._pending.append(token)
            if self._scheduled:
                return
            self._scheduled = True
        self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            tokens = list(self._pending)
            self._pending.clear()
            self._scheduled = False
        on_token = self._on_token
        for token in tokens:
            on_token(token)


def secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def choice_schema(choices: list[str]) -> dict[str, Any]:
    """A JSON schema of ``{"choice": one of choices}``."""
    return {
        "type": "object",
        "properties": {CHOICE_FIELD: {"type": "string", "enum": list(choices)}},
        "required": [CHOICE_FIELD],
        "additionalProperties": False,
    }


def extract_choice(text: str) -> str:
    """The ``choice`` of a JSON answer; the raw text when it is not such an object
    (the node then reports that raw answer as outside the labels)."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        return text.strip()
    if isinstance(data, dict) and isinstance(data.get(CHOICE_FIELD), str):
        return str(data[CHOICE_FIELD])
    return text.strip()


def decode_arguments(raw: str | None) -> dict[str, Any]:
    """A tool call's JSON arguments as a dict; a non-object becomes ``{"_raw": text}`` so the
    tool layer can report it instead of crashing the provider."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {"_raw": raw}
    return data if isinstance(data, dict) else {"_raw": raw}
