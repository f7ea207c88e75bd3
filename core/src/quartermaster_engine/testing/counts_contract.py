"""The store contract's clause on usage counted by commits (`StoreContract` includes
it; it needs its ``store``, ``make_store`` and ``graph`` fixtures and `new_flow`).

A store that `KeepsKeyUsage` applies a commit's ``key_usage``, and one that
`LimitsTokens` its ``key_tokens``, with the rest of the commit, all or nothing: an
accepted commit's counts are seen by every process sharing the store, and a refused
one (a duplicate, a stale lease epoch, a superseded attempt) counts nothing.
Stores with neither ability skip it.

A store that `ReleasesSlotsInCommit` gives up a commit's ``release_slots`` with the
rest of an accepted commit (seen by another process as the commit is), and a refused
commit keeps them held.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest

from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus
from quartermaster_engine.stores.base import (
    DuplicateCommitError,
    KeepsKeyUsage,
    LimitsTokens,
    ReleasesSlotsInCommit,
    StaleLeaseError,
)
from quartermaster_engine.stores.records import (
    Activation,
    Commit,
    TokenCount,
    UsageCount,
)
from quartermaster_engine.testing.calls import call, close_store
from quartermaster_engine.testing.contract_base import StoreContractBase
from quartermaster_engine.testing.graphs import name_id
from quartermaster_engine.types import GraphSpec


class CountsContract(StoreContractBase):
    """Usage counts applied by fenced commits."""

    def _two_pending(self, store: Any, graph: GraphSpec) -> tuple[Any, Activation, Activation]:
        """A new flow under lease epoch 1 with Start and n0 pending: its id and them."""
        fid = self.new_flow(store, graph).flow_id
        call(store, "acquire_lease", fid, "host:1:a", 30.0)
        start = Activation(name_id("Start"), 1)
        first = Activation(name_id("n0"), 1)
        call(store, "commit", fid, Commit(enqueue=[start, first], epoch=1))
        return fid, start, first

    def test_a_commit_counts_its_usage_once_and_a_refused_one_nothing(
        self, store: Any, make_store: Callable[[], Any], graph: GraphSpec
    ) -> None:
        usage, tokens = isinstance(store, KeepsKeyUsage), isinstance(store, LimitsTokens)
        if not usage and not tokens:
            pytest.skip(f"{type(store).__name__} counts no usage (optional abilities)")
        other = make_store()
        key, two, tok = (f"tenant:{uuid4().hex}", f"llm:x:{uuid4().hex}", f"llm:t:{uuid4().hex}")
        now = 5_000_000.0

        def commit(act: Activation, rec: NodeExecution, epoch: int, n: int, at: float) -> None:
            """Commit ``rec`` for ``act`` with one run and ``n`` tokens for the keys."""
            counts: dict[str, Any] = {}
            if usage:
                counts["key_usage"] = [
                    UsageCount(key, 1, n, n * 0.00001),
                    UsageCount(two, 1, n, 0.0),
                ]
            if tokens:
                counts["key_tokens"] = [TokenCount(tok, n, at, 10.0)]
            call(store, "commit", fid, Commit(done=act.key, record=rec, epoch=epoch, **counts))

        def seen() -> tuple[Any, ...]:
            found = [] if not usage else call(other, "keys_usage", [key, two])
            window = [] if not tokens else call(other, "tokens_in_window", tok, 10.0, now + 5)
            return (
                [(r, t, round(c, 9)) for r, t, c in found],
                [tuple(w) for w in window],
            )

        try:
            fid, start, first = self._two_pending(store, graph)
            rec = NodeExecution(name_id("Start"), NodeStatus.FINISHED, visit=1, attempt=1)
            commit(start, rec, 1, 120, now)
            after = seen()
            assert after == (
                [(1, 120, 0.0012), (1, 120, 0.0)] if usage else [],
                [(now, 120)] if tokens else [],
            )
            # A duplicate delivery's commit, and a superseded attempt's, count nothing.
            with pytest.raises(DuplicateCommitError):
                commit(start, rec, 1, 120, now + 1)
            late = NodeExecution(name_id("n0"), NodeStatus.FAILED, visit=1, attempt=2)
            with pytest.raises(DuplicateCommitError):
                commit(first, late, 1, 7, now + 1)
            assert seen() == after
            # A commit under a stale lease epoch counts nothing either.
            call(store, "acquire_lease", fid, "host:2:b", 30.0, take_over=1)
            ran = NodeExecution(name_id("n0"), NodeStatus.FINISHED, visit=1, attempt=1)
            with pytest.raises(StaleLeaseError):
                commit(first, ran, 1, 30, now + 2)
            assert seen() == after
            commit(first, ran, 2, 30, now + 2)
            assert seen() == (
                [(2, 150, 0.0015), (2, 150, 0.0)] if usage else [],
                [(now, 120), (now + 2, 30)] if tokens else [],
            )
        finally:
            close_store(other)

    def test_a_commit_gives_its_slots_back_and_a_refused_one_keeps_them(
        self, store: Any, make_store: Callable[[], Any], graph: GraphSpec
    ) -> None:
        if not isinstance(store, ReleasesSlotsInCommit) or not store.releases_slots_in_commit():
            pytest.skip(f"{type(store).__name__} releases no slots in commits (optional)")
        other = make_store()
        key, two = f"llm:rel:{uuid4().hex}", f"tenant:{uuid4().hex}"
        now = time.time()

        def commit(act: Activation, rec: NodeExecution, epoch: int, *gives: str) -> None:
            """Commit ``rec`` for ``act``, giving up the slots of ``gives`` (holders of
            ``key``; "h1" also gives up its slot of ``two``)."""
            slots = [(key, h) for h in gives] + [(two, h) for h in gives if h == "h1"]
            call(
                store,
                "commit",
                fid,
                Commit(done=act.key, record=rec, epoch=epoch, release_slots=slots),
            )

        try:
            fid, start, first = self._two_pending(store, graph)
            assert call(store, "take_slot", key, "h1", 2, now, now + 30) == 0
            assert call(other, "take_slot", key, "h2", 2, now, now + 30) == 0
            assert call(store, "take_slot", two, "h1", 1, now, now + 30) == 0
            rec = NodeExecution(name_id("Start"), NodeStatus.FINISHED, visit=1, attempt=1)
            commit(start, rec, 1, "h1")
            assert call(other, "slots_in_use", now + 1) == {key: 1}
            # A duplicate's commit, and one under a stale lease, give nothing back.
            with pytest.raises(DuplicateCommitError):
                commit(start, rec, 1, "h2")
            call(store, "acquire_lease", fid, "host:2:b", 30.0, take_over=1)
            ran = NodeExecution(name_id("n0"), NodeStatus.FINISHED, visit=1, attempt=1)
            with pytest.raises(StaleLeaseError):
                commit(first, ran, 1, "h2")
            assert call(other, "slots_in_use", now + 1) == {key: 1}
            commit(first, ran, 2, "h2")
            assert call(other, "slots_in_use", now + 1) == {}
        finally:
            close_store(other)
