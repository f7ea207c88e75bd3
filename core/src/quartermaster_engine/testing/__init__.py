"""Conformance kit for backend authors.

A store or dispatcher proves it keeps the engine's contract by running the
same suites as the first-party backends. Subclass a contract in your test
module and provide its fixture; pytest collects the inherited tests::

    import pytest
    from quartermaster_engine.testing import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def make_store(self, tmp_path):
            # A callable opening the store; every call must see the same data
            # (a second process would open it the same way).
            return lambda: MyStore(tmp_path / "flows.db")

    from quartermaster_engine.testing import DispatcherContract

    class TestMyDispatcher(DispatcherContract):
        @pytest.fixture
        def dispatcher(self):
            d = MyDispatcher(max_workers=8)
            yield d
            d.shutdown()

Durable stores also run the SIGKILL crash matrix of
`quartermaster_engine.testing.crash` (a flow killed mid-run in a process of
its own, recovered in another). See ``docs/writing-plugins.md``.

`quartermaster_engine.testing.task_fleet.TaskFleet` is a fleet whose workers are
asyncio tasks of the test's process: a `RemoteDispatcher` to test what runs on a
fleet (child flows, hand-overs) without a broker.
"""

import pytest

# Plain asserts in the suites should explain themselves to backend authors as
# well as they do in test files, so let pytest rewrite them on import.
pytest.register_assert_rewrite(
    "quartermaster_engine.testing.store_contract",
    "quartermaster_engine.testing.contract_base",
    "quartermaster_engine.testing.abilities_contract",
    "quartermaster_engine.testing.legacy_contract",
    "quartermaster_engine.testing.flows_contract",
    "quartermaster_engine.testing.commits_contract",
    "quartermaster_engine.testing.runner_contract",
    "quartermaster_engine.testing.counts_contract",
    "quartermaster_engine.testing.moves_contract",
    "quartermaster_engine.testing.dispatcher_contract",
    "quartermaster_engine.testing.fencing_contract",
    "quartermaster_engine.testing.live_contract",
    "quartermaster_engine.testing.slots_contract",
    "quartermaster_engine.testing.crash",
    "quartermaster_engine.testing.timers",
)

from quartermaster_engine.testing.calls import call  # noqa: E402
from quartermaster_engine.testing.clock import TestClock  # noqa: E402
from quartermaster_engine.testing.dispatcher_contract import DispatcherContract  # noqa: E402
from quartermaster_engine.testing.graphs import build_graph, chain_graph  # noqa: E402
from quartermaster_engine.testing.store_contract import StoreContract  # noqa: E402

__all__ = ["DispatcherContract", "StoreContract", "TestClock", "build_graph", "call", "chain_graph"]
