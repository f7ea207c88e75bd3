"""`SQLiteSettings`: the ``[store]`` section of a configuration naming ``sqlite``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from quartermaster_engine.stores.retention import Retention

#: The values of SQLite's ``PRAGMA synchronous`` we accept.
Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]

DEFAULT_BUSY_TIMEOUT = 30.0


class SQLiteSettings(BaseModel):
    """Settings of the ``sqlite`` store.

    - ``path``: the database file. A relative path is resolved against the
      folder of the configuration file (the current folder when the settings do
      not come from a file). Its folder must exist; the file is created on first
      use.
    - ``synchronous``: SQLite's ``PRAGMA synchronous``. NORMAL (default) in WAL
      mode survives a crash of the process at any point; FULL also survives
      losing power, at the price of an fsync per commit.
    - ``busy_timeout``: seconds a write (or opening the file) waits for another
      connection (another process on the same file) to release its lock before
      failing.
    - ``retention``: how long ended flows are kept before ``qm flows prune``
      (without an age) deletes them; ``"7d"``, ``"12h"``, ``"1d12h"``, seconds,
      or ISO 8601 (``"P7D"``). None (default): kept until pruned by age.
    """

    model_config = ConfigDict(extra="forbid")

    path: Path
    synchronous: Synchronous = "NORMAL"
    busy_timeout: float = Field(default=DEFAULT_BUSY_TIMEOUT, ge=0)
    retention: Retention = None

    @field_validator("path", mode="after")
    @classmethod
    def _resolve_path(cls, value: Path, info: ValidationInfo) -> Path:
        if str(value) == "":
            raise ValueError("path must name a database file")
        value = value.expanduser()
        if value.is_absolute():
            return value
        context = info.context if isinstance(info.context, dict) else None
        base = context.get("config_dir") if context else None
        return (Path(base) if base is not None else Path.cwd()) / value

    @field_validator("synchronous", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value
