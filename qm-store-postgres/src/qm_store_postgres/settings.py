"""`PostgresSettings`: the ``[store]`` section of a configuration naming ``postgres``."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from quartermaster_engine.redaction import redact_url
from quartermaster_engine.stores.retention import Retention

_SCHEMES = ("postgres", "postgresql")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_dsn(dsn: str) -> str:
    """``dsn`` if it is a ``postgresql://`` URL asyncpg can use; a ValueError naming
    the problem otherwise (with the password hidden)."""
    shown = redact_url(dsn)
    parts = urlsplit(dsn)
    if parts.scheme not in _SCHEMES:
        raise ValueError(
            f"invalid PostgreSQL DSN {shown!r}: it must start with postgresql:// or postgres://"
        )
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise ValueError(f"invalid PostgreSQL DSN {shown!r}: the port is not a number") from None
    return dsn


def check_schema_name(name: str) -> str:
    """``name`` if it is a plain lower-case SQL identifier; a ValueError otherwise."""
    if not _IDENTIFIER.match(name):
        raise ValueError(
            f"invalid schema name {name!r}: use lower-case letters, digits and _, "
            "starting with a letter or _ (at most 63)"
        )
    return name


class PostgresSettings(BaseModel):
    """Settings of the ``postgres`` store.

    - ``dsn`` (or ``url``): ``postgresql://user:password@host:port/database``;
      libpq's query parameters (``?host=/run/postgresql`` for a socket, ``sslmode``)
      are understood. The password never appears in messages.
    - ``schema_name``: the PostgreSQL schema holding the store's tables (created on
      first use); several stores may share a database under different schemas.
    - ``pool_size``: connections per event loop of each process for calls at once
      (plus one the loop keeps for its calls one at a time).
    - ``statement_timeout``: seconds a statement may run on the server (and the
      client waits for its answer) before it fails.
    - ``connect_timeout``: seconds to wait for a connection.
    - ``retention``: how long ended flows are kept before ``qm flows prune``
      (without an age) deletes them; ``"7d"``, ``"12h"``, seconds, ISO 8601.
    """

    # Errors never repeat the input: a DSN carries a password.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, hide_input_in_errors=True)

    dsn: str = Field(validation_alias=AliasChoices("dsn", "url"))
    schema_name: str = "quartermaster"
    pool_size: int = Field(default=10, ge=1, le=1000)
    statement_timeout: float = Field(default=30.0, gt=0)
    connect_timeout: float = Field(default=10.0, gt=0)
    retention: Retention = None

    @field_validator("dsn")
    @classmethod
    def _valid_dsn(cls, value: str) -> str:
        return check_dsn(value)

    @field_validator("schema_name")
    @classmethod
    def _valid_schema(cls, value: str) -> str:
        return check_schema_name(value)
