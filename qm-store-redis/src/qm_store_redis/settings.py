"""`RedisSettings`: the ``[store]`` section when ``name = "redis"``."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from redis.asyncio.connection import parse_url

#: Characters a key prefix may not contain: braces would move the hash tag
#: (Cluster slot) away from the flow id, whitespace makes keys awkward to inspect.
_BAD_PREFIX = re.compile(r"[{}\s]")


def check_url(url: str) -> str:
    """``url`` if redis-py can connect with it; a ValueError naming it otherwise."""
    try:
        parse_url(url)
    except ValueError as exc:
        raise ValueError(f"invalid Redis URL {url!r}: {exc}") from None
    parts = urlsplit(url)
    # redis-py silently ignores a database path it cannot read as a number.
    database = parts.path.strip("/")
    if parts.scheme in ("redis", "rediss") and database and not database.isdigit():
        raise ValueError(f"invalid Redis URL {url!r}: database {database!r} is not a number")
    return url


def check_prefix(prefix: str) -> str:
    """``prefix`` if it can start every key of the store; a ValueError otherwise."""
    if not prefix or _BAD_PREFIX.search(prefix):
        raise ValueError(
            f"invalid key prefix {prefix!r}: it must be non-empty, without braces or whitespace"
        )
    return prefix


class RedisSettings(BaseModel):
    """Settings of the ``redis`` store."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        "redis://localhost:6379/0",
        description="redis://, rediss:// or unix:// URL of the server (database in the path)",
    )
    key_prefix: str = Field("qm", description="first segment of every key the store writes")
    ttl_seconds: float | None = Field(
        None,
        gt=0,
        description="once a flow ends, its keys expire after this many seconds; none keeps them",
    )
    cluster: bool = Field(
        False,
        description="talk the Redis Cluster protocol; url names any node of the cluster",
    )
    timeout_seconds: float = Field(
        5.0,
        gt=0,
        description="connect and socket timeout: how long a lost server may block a call",
    )

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        return check_url(value)

    @field_validator("key_prefix")
    @classmethod
    def _valid_prefix(cls, value: str) -> str:
        return check_prefix(value)
