"""Conformance of the optional `HoldsSlots` and `LimitsRate` abilities (inherited by
`StoreContract`).

A store that declares it (``isinstance(store, HoldsSlots)``) must let at most
``limit`` holders hold a key's slots at once, across every process sharing it
(two stores from ``make_store`` stand in for two processes), drop slots whose
expiry passed, renew and release them, and count the unexpired ones; one that
`LimitsRate` must count at most ``limit`` starts of a key in any window of ``per``
seconds. Times are given by the test: no sleeps. Stores without an ability skip
its tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest

from quartermaster_engine.stores.base import HoldsSlots, LimitsRate
from quartermaster_engine.testing.calls import call, close_store


class SlotsContract:
    """Tests of concurrency slots; ``store`` and ``make_store`` are `StoreContract`'s."""

    def test_slots_hold_the_limit_across_processes_and_lapse(
        self, store: Any, make_store: Callable[[], Any]
    ) -> None:
        if not isinstance(store, HoldsSlots):
            pytest.skip(f"{type(store).__name__} keeps no slots (an optional ability)")
        other = make_store()
        key, elsewhere = f"llm:test:{uuid4().hex}", f"tenant:{uuid4().hex}"
        try:
            now = 1_000_000.0
            # Two processes take 2 slots of a limit of 2; a third holder waits.
            assert call(store, "acquire_slot", key, "a", 2, now, now + 30) is True
            assert call(other, "acquire_slot", key, "b", 2, now, now + 30) is True
            assert call(store, "acquire_slot", key, "c", 2, now + 1, now + 31) is False
            # A holder asking again keeps its one slot (and its new expiry).
            assert call(other, "acquire_slot", key, "b", 2, now + 1, now + 40) is True
            assert call(store, "acquire_slot", elsewhere, "c", 1, now, now + 30) is True
            assert call(other, "slots_in_use", now + 2) == {key: 2, elsewhere: 1}
            # "a" releases: "c" gets its slot; "b" renews, "c" does not.
            call(store, "release_slot", key, "a")
            call(store, "release_slot", key, "nobody")
            assert call(other, "acquire_slot", key, "c", 2, now + 3, now + 33) is True
            assert call(store, "renew_slot", key, "b", now + 100) is True
            assert call(store, "renew_slot", key, "a", now + 100) is False
            # At now + 33 the slot of "c" has lapsed (as a killed holder's would).
            assert call(store, "slots_in_use", now + 33) == {key: 1}
            assert call(other, "acquire_slot", key, "d", 2, now + 33, now + 63) is True
            assert call(store, "acquire_slot", key, "e", 2, now + 34, now + 64) is False
            assert call(store, "slots_in_use", now + 34) == {key: 2}
        finally:
            close_store(other)

    def test_starts_per_window_hold_across_processes(
        self, store: Any, make_store: Callable[[], Any]
    ) -> None:
        if not isinstance(store, LimitsRate):
            pytest.skip(f"{type(store).__name__} counts no starts (an optional ability)")
        other = make_store()
        key = f"llm:rate:{uuid4().hex}"
        try:
            now = 2_000_000.0
            for i in range(3):
                assert call((store, other)[i % 2], "take_request", key, 3, 10.0, now + i) == 0.0
            # Full: the oldest start (at now) leaves the window at now + 10.
            assert call(other, "take_request", key, 3, 10.0, now + 3) == pytest.approx(7.0)
            assert call(store, "take_request", key, 3, 10.0, now + 9.5) == pytest.approx(0.5)
            assert call(store, "take_request", key, 3, 10.0, now + 10) == 0.0
            assert call(other, "requests_in_window", key, 10.0, now + 10.5) == 3
            # 60 a minute, asked for every half second by two processes for two
            # minutes: exactly 120 starts, never more than 60 in any minute.
            key = f"llm:rate:{uuid4().hex}"
            started = [
                now + i / 2
                for i in range(240)
                if call((store, other)[i % 2], "take_request", key, 60, 60.0, now + i / 2) == 0
            ]
            assert len(started) == 120
            assert max(sum(1 for t in started if s <= t < s + 60) for s in started) == 60
        finally:
            close_store(other)
