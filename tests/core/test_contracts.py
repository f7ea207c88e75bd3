"""The core's own backends pass the conformance kit it gives plugin authors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from quartermaster_engine import AsyncDispatcher, InMemoryStore, SyncDispatcher
from quartermaster_engine.testing import DispatcherContract, StoreContract


class TestInMemoryStore(StoreContract):
    @pytest.fixture
    def make_store(self) -> Callable[[], Any]:
        shared = InMemoryStore()
        return lambda: shared


class TestSyncDispatcher(DispatcherContract):
    @pytest.fixture
    def dispatcher(self) -> Any:
        return SyncDispatcher()


class TestAsyncDispatcher(DispatcherContract):
    @pytest.fixture
    def dispatcher(self) -> Any:
        return AsyncDispatcher(max_concurrency=16)
