"""The thread dispatcher passes the dispatcher conformance kit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qm_dispatch_thread import ThreadDispatcher
from quartermaster_engine.testing import DispatcherContract


class TestThreadDispatcher(DispatcherContract):
    @pytest.fixture
    def dispatcher(self) -> Iterator[ThreadDispatcher]:
        dispatcher = ThreadDispatcher(max_workers=8)
        yield dispatcher
        dispatcher.shutdown()


class TestThreadDispatcherWithTypeLimits(DispatcherContract):
    """The same contract when every type the kit uses is behind a gate."""

    @pytest.fixture
    def dispatcher(self) -> Iterator[ThreadDispatcher]:
        limits = {t: 3 for t in ("echo", "branch", "join", "blocking", "stream", "wait", "flaky")}
        dispatcher = ThreadDispatcher(max_workers=4, type_limits=limits)
        yield dispatcher
        dispatcher.shutdown()


class TestSingleWorker(DispatcherContract):
    """One thread: every blocking call queues behind the others."""

    @pytest.fixture
    def dispatcher(self) -> Iterator[ThreadDispatcher]:
        dispatcher = ThreadDispatcher(max_workers=1)
        yield dispatcher
        dispatcher.shutdown()
