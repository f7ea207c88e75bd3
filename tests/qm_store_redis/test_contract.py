"""RedisStore passes the engine's store conformance kit against a real server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from qm_redis_support import RedisServer, store_for

from quartermaster_engine.testing import StoreContract


class TestRedisStore(StoreContract):
    @pytest.fixture
    def make_store(self, redis_server: RedisServer, prefix: str) -> Callable[[], Any]:
        # Each call opens a new store on the same server and prefix, as a second
        # process would; a unique prefix per test keeps tests apart without FLUSHDB.
        return lambda: store_for(redis_server, prefix)
