"""The store contract suite: what every store must do, as pytest tests.

Subclass `StoreContract` and provide a ``make_store`` fixture: a zero-argument
callable that opens the store under test. Every call must open the same data
(two calls stand in for two processes sharing it). Stores may implement their
methods with ``def`` or ``async def``; the suite calls both alike.

The clauses live by area, one module each: optional abilities
(`abilities_contract`), 0.1.5's methods (`legacy_contract`), flow records
(`flows_contract`), commits (`commits_contract`), the store under the runner
(`runner_contract`), fencing and the event log (`fencing_contract`), counts
(`counts_contract`), the live channel (`live_contract`), moves
(`moves_contract`) and slots (`slots_contract`); their fixtures and `new_flow`
are `contract_base.StoreContractBase`'s.
"""

from __future__ import annotations

from quartermaster_engine.testing.abilities_contract import AbilitiesContract
from quartermaster_engine.testing.commits_contract import CommitsContract
from quartermaster_engine.testing.counts_contract import CountsContract
from quartermaster_engine.testing.fencing_contract import FencingContract
from quartermaster_engine.testing.flows_contract import FlowRecordsContract
from quartermaster_engine.testing.legacy_contract import LegacyStoreContract
from quartermaster_engine.testing.live_contract import LiveChannelContract
from quartermaster_engine.testing.moves_contract import MovesContract
from quartermaster_engine.testing.runner_contract import RunnerContract
from quartermaster_engine.testing.slots_contract import SlotsContract


class StoreContract(
    AbilitiesContract,
    LegacyStoreContract,
    FlowRecordsContract,
    CommitsContract,
    RunnerContract,
    CountsContract,
    FencingContract,
    LiveChannelContract,
    MovesContract,
    SlotsContract,
):
    """Inherit this in a ``Test...`` class and provide ``make_store``."""
