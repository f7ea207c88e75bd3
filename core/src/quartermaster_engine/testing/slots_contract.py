"""Conformance of the optional `HoldsSlots`, `LimitsRate` and `CountsWaiters`
abilities (inherited by `StoreContract`).

A store that declares it (``isinstance(store, HoldsSlots)``) must let at most
``limit`` holders hold a key's slots at once, across every process sharing it
(two stores from ``make_store`` stand in for two processes), give them to the
key's line first come first served, drop slots and waiters whose expiry passed,
renew and release slots, and count the unexpired ones; one that
`LimitsRate` must count at most ``limit`` starts of a key in any window of ``per``
seconds; one that `CountsWaiters` must count each key's unexpired waiters of every
process; one that `LimitsTokens` must sum each key's tokens in its window across
processes; one that `KeepsKeyUsage` must add up each budget key's usage across
processes; one that keeps slots and counts starts (a store shared by processes) must
keep each window's line in its window checks (`KeepsWindowLines`). Times are given
by the test: no sleeps. Stores without an ability skip its tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest

from quartermaster_engine.runner.window_line import line_of, tokens_wait
from quartermaster_engine.stores.base import (
    CountsWaiters,
    HoldsSlots,
    KeepsKeyUsage,
    KeepsWindowLines,
    LimitsRate,
    LimitsTokens,
)
from quartermaster_engine.stores.records import WindowAsk
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
            # Two processes take 2 slots of a limit of 2; a third holder waits, first
            # in the key's line.
            assert call(store, "take_slot", key, "a", 2, now, now + 30) == 0
            assert call(other, "take_slot", key, "b", 2, now, now + 30) == 0
            assert call(store, "take_slot", key, "c", 2, now + 1, now + 31) == 1
            # A holder asking again keeps its one slot (and its new expiry).
            assert call(other, "take_slot", key, "b", 2, now + 1, now + 40) == 0
            assert call(store, "take_slot", elsewhere, "c", 1, now, now + 30) == 0
            assert call(other, "slots_in_use", now + 2) == {key: 2, elsewhere: 1}
            # "a" releases: "c" gets its slot; "b" renews, "c" does not.
            call(store, "release_slot", key, "a")
            call(store, "release_slot", key, "nobody")
            assert call(other, "take_slot", key, "c", 2, now + 3, now + 33) == 0
            assert call(store, "renew_slot", key, "b", now + 100) is True
            assert call(store, "renew_slot", key, "a", now + 100) is False
            # At now + 33 the slot of "c" has lapsed (as a killed holder's would).
            assert call(store, "slots_in_use", now + 33) == {key: 1}
            assert call(other, "take_slot", key, "d", 2, now + 33, now + 63) == 0
            assert call(store, "take_slot", key, "e", 2, now + 34, now + 64) == 1
            assert call(store, "slots_in_use", now + 34) == {key: 2}
        finally:
            close_store(other)

    def test_slots_go_to_the_line_first_come_first_served(
        self, store: Any, make_store: Callable[[], Any]
    ) -> None:
        if not isinstance(store, HoldsSlots) or not isinstance(store, CountsWaiters):
            pytest.skip(f"{type(store).__name__} keeps no slots (an optional ability)")
        other = make_store()
        key = f"llm:line:{uuid4().hex}"
        try:
            now = 4_000_000.0
            assert call(store, "take_slot", key, "a", 1, now, now + 30) == 0
            # Refused in turn by two processes: places 1, 2, 3, kept when asking again.
            assert call(other, "take_slot", key, "w1", 1, now + 1, now + 31) == 1
            assert call(store, "take_slot", key, "w2", 1, now + 2, now + 32) == 2
            assert call(other, "take_slot", key, "w3", 1, now + 3, now + 13) == 3
            assert call(other, "take_slot", key, "w2", 1, now + 4, now + 34) == 2
            # A waiter for a window is counted but not in the line.
            call(store, "mark_waiting", key, "window", now + 4, now + 34)
            assert call(other, "waiting_counts", now + 5) == {key: 4}
            assert call(store, "take_slot", key, "w4", 1, now + 5, now + 35) == 4
            # The slot frees: a newcomer and the second in line are refused, the
            # first takes it (and leaves the line).
            call(other, "release_slot", key, "a")
            assert call(store, "take_slot", key, "late", 1, now + 6, now + 36) == 5
            assert call(other, "take_slot", key, "w2", 1, now + 6, now + 36) == 2
            assert call(store, "take_slot", key, "w1", 1, now + 6, now + 36) == 0
            assert call(store, "take_slot", key, "w2", 1, now + 7, now + 37) == 1
            # The mark of w3 lapses at now + 13 (a killed waiter): w4 moves up; one
            # that leaves the line (cancelled) frees its place too.
            assert call(other, "take_slot", key, "w4", 1, now + 13, now + 43) == 2
            call(other, "unmark_waiting", key, "w2")
            assert call(store, "take_slot", key, "w4", 1, now + 14, now + 44) == 1
            assert call(other, "waiting_counts", now + 14) == {key: 3}  # w4, late, window
            # With a limit of 3 and one slot held, the first two in line may take one
            # each, the third may not.
            call(store, "release_slot", key, "w1")
            bigger = f"llm:line:{uuid4().hex}"
            assert call(store, "take_slot", bigger, "h", 1, now, now + 30) == 0
            for i, waiter in enumerate(["x", "y", "z"]):
                assert call(other, "take_slot", bigger, waiter, 1, now + 1, now + 31) == i + 1
            assert call(store, "take_slot", bigger, "z", 3, now + 2, now + 32) == 3
            assert call(store, "take_slot", bigger, "y", 3, now + 2, now + 32) == 0
            assert call(other, "take_slot", bigger, "x", 3, now + 2, now + 32) == 0
            assert call(store, "take_slot", bigger, "z", 3, now + 2, now + 32) == 1
            assert call(store, "slots_in_use", now + 2)[bigger] == 3
            # A window's line (`runner.window_line`): a take with limit 0 never gives
            # a slot; it queues the holder (or keeps its place) and returns its place.
            window, now = f"llm:window:{uuid4().hex}", now + 500_000
            assert call(store, "take_slot", window, "w1", 0, now, now + 30) == 1
            assert call(other, "take_slot", window, "w2", 0, now + 1, now + 31) == 2
            assert call(store, "take_slot", window, "w3", 0, now + 2, now + 12) == 3
            assert call(other, "take_slot", window, "w1", 0, now + 3, now + 33) == 1
            assert call(store, "waiting_counts", now + 3) == {window: 3}
            assert call(other, "slots_in_use", now + 3) == {}
            call(store, "unmark_waiting", window, "w1")  # it passed the window
            assert call(other, "take_slot", window, "w2", 0, now + 4, now + 34) == 1
            # w3's mark lapsed at now + 12: a newcomer queues behind w2 only.
            assert call(store, "take_slot", window, "w4", 0, now + 12, now + 42) == 2
            assert call(other, "waiting_counts", now + 12) == {window: 2}
        finally:
            close_store(other)

    def test_a_window_check_keeps_the_windows_line(
        self, store: Any, make_store: Callable[[], Any]
    ) -> None:
        if not isinstance(store, HoldsSlots) or not isinstance(store, LimitsRate):
            pytest.skip(f"{type(store).__name__} keeps no lines of windows (optional)")
        # A store that keeps both must keep a window's line in its check, atomically:
        # else a newcomer asking as room frees starts ahead of the line.
        assert isinstance(store, KeepsWindowLines)
        other = make_store()
        key = f"llm:turn:{uuid4().hex}"
        line = line_of(key)

        def starts(s: Any, waiter: str, at: float) -> tuple[int, float]:
            ask = WindowAsk(key, line, waiter, 1, 10.0, at, at, at + 30)
            place, wait = call(s, "take_request_in_line", ask)
            return int(place), round(float(wait), 6)

        try:
            now = 5_000_000.0
            # An empty line and room: one call starts it, nothing queued.
            assert starts(store, "first", now) == (0, 0.0)
            # Full: the first refused is first in line, told when room frees.
            assert starts(other, "w1", now + 1) == (1, 9.0)
            assert starts(store, "w2", now + 2) == (2, 0.0)
            assert call(other, "waiting_counts", now + 2) == {line: 2}
            # Room frees at now + 10: a newcomer joins the line behind the waiters,
            # the second in line stays second, the first starts (and leaves the line).
            assert starts(other, "late", now + 10.5) == (3, 0.0)
            assert starts(other, "w2", now + 10.5) == (2, 0.0)
            assert call(store, "requests_in_window", key, 10.0, now + 10.5) == 0
            assert starts(store, "w1", now + 10.5) == (0, 0.0)
            assert call(other, "requests_in_window", key, 10.0, now + 10.5) == 1
            assert starts(store, "w2", now + 11) == (1, 9.5)
            assert starts(other, "late", now + 11) == (2, 0.0)
            assert call(store, "waiting_counts", now + 11) == {line: 2}
            # w2's mark lapses at now + 41 (a killed waiter's would): "late" moves up.
            assert starts(other, "late", now + 20.5) == (2, 0.0)
            assert starts(other, "late", now + 41.5) == (0, 0.0)
            assert call(store, "waiting_counts", now + 41.5) == {}
        finally:
            close_store(other)

    def test_a_token_check_keeps_the_windows_line(
        self, store: Any, make_store: Callable[[], Any]
    ) -> None:
        if not isinstance(store, HoldsSlots) or not isinstance(store, LimitsTokens):
            pytest.skip(f"{type(store).__name__} keeps no lines of windows (optional)")
        assert isinstance(store, KeepsWindowLines)
        other = make_store()
        key = f"llm:tokturn:{uuid4().hex}"
        line = line_of(key)

        def room(s: Any, waiter: str, at: float, leave: bool = True) -> tuple[int, float]:
            ask = WindowAsk(key, line, waiter, 100, 10.0, at, at, at + 30)
            place, wait = call(s, "take_tokens_in_line", ask, leave)
            return int(place), round(float(wait), 6)

        try:
            now = 6_000_000.0
            assert room(store, "first", now) == (0, 0.0)
            call(store, "add_tokens", key, 60, now, 10.0)
            call(other, "add_tokens", key, 50, now + 1, 10.0)
            # 110 tokens in the window: 100 or more wait until the 60 leave (now + 10).
            assert room(other, "t1", now + 2) == (1, 8.0)
            assert room(store, "t2", now + 3) == (2, 0.0)
            # The 60 left: a newcomer queues behind both; t1 may start but, asked to
            # keep its place (a starts window of the line comes next), stays first.
            assert room(other, "late", now + 10.5) == (3, 0.0)
            assert room(store, "t1", now + 10.5, leave=False) == (0, 0.0)
            assert room(other, "t2", now + 10.5) == (2, 0.0)
            assert call(other, "waiting_counts", now + 10.5) == {line: 3}
            assert room(store, "t1", now + 10.6) == (0, 0.0)
            assert room(other, "t2", now + 10.6) == (0, 0.0)
            assert call(store, "waiting_counts", now + 10.6) == {line: 1}
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

    def test_waiters_are_counted_across_processes_and_lapse(
        self, store: Any, make_store: Callable[[], Any]
    ) -> None:
        if not isinstance(store, CountsWaiters):
            pytest.skip(f"{type(store).__name__} counts no waiters (an optional ability)")
        other = make_store()
        key, elsewhere = f"llm:wait:{uuid4().hex}", f"tenant:{uuid4().hex}"
        try:
            now = 3_000_000.0
            call(store, "mark_waiting", key, "a", now, now + 30)
            call(other, "mark_waiting", key, "b", now, now + 30)
            call(other, "mark_waiting", key, "c", now, now + 10)
            call(store, "mark_waiting", elsewhere, "a", now, now + 30)
            # Marking again renews, never counts twice.
            call(store, "mark_waiting", key, "a", now + 1, now + 31)
            assert call(other, "waiting_counts", now + 2) == {key: 3, elsewhere: 1}
            call(store, "unmark_waiting", key, "b")
            call(store, "unmark_waiting", key, "nobody")
            # At now + 10 the mark of "c" has lapsed (as a killed waiter's would).
            assert call(store, "waiting_counts", now + 10) == {key: 1, elsewhere: 1}
            call(other, "unmark_waiting", elsewhere, "a")
            assert call(other, "waiting_counts", now + 31) == {}
            call(other, "mark_waiting", key, "d", now + 31, now + 61)
            assert call(store, "waiting_counts", now + 32) == {key: 1}
        finally:
            close_store(other)

    def test_tokens_per_window_are_summed_across_processes(
        self, store: Any, make_store: Callable[[], Any]
    ) -> None:
        if not isinstance(store, LimitsTokens):
            pytest.skip(f"{type(store).__name__} counts no tokens (an optional ability)")
        other = make_store()
        key = f"llm:tokens:{uuid4().hex}"
        try:
            now = 4_000_000.0
            call(store, "add_tokens", key, 100, now, 10.0)
            call(other, "add_tokens", key, 250, now + 2, 10.0)
            call(store, "add_tokens", key, 50, now + 4, 10.0)
            used = [tuple(u) for u in call(other, "tokens_in_window", key, 10.0, now + 5)]
            assert used == [(now, 100), (now + 2, 250), (now + 4, 50)]
            # 400 in the window: a limit of 401 lets the next start; of 400 it waits
            # until the 100 leave (at now + 10); of 300, until the 250 leave too.
            assert tokens_wait(used, 401, 10.0, now + 5) == 0.0
            assert tokens_wait(used, 400, 10.0, now + 5) == 5.0
            assert tokens_wait(used, 300, 10.0, now + 5) == 7.0
            used = [tuple(u) for u in call(store, "tokens_in_window", key, 10.0, now + 10)]
            assert used == [(now + 2, 250), (now + 4, 50)]
            # A count drops the counts that left its window for good.
            call(other, "add_tokens", key, 1, now + 13, 10.0)
            used = [tuple(u) for u in call(store, "tokens_in_window", key, 100.0, now + 13)]
            assert used == [(now + 4, 50), (now + 13, 1)]
        finally:
            close_store(other)

    def test_key_usage_is_added_up_across_processes(
        self, store: Any, make_store: Callable[[], Any]
    ) -> None:
        if not isinstance(store, KeepsKeyUsage):
            pytest.skip(f"{type(store).__name__} keeps no usage per key (an optional ability)")
        other = make_store()
        key, elsewhere = f"tenant:{uuid4().hex}", f"tenant:{uuid4().hex}"
        try:
            assert [tuple(u) for u in call(other, "keys_usage", [key])] == [(0, 0, 0.0)]
            call(store, "add_key_usage", key, 1, 120, 0.0004)
            call(other, "add_key_usage", key, 1, 0, 0.0)
            call(store, "add_key_usage", key, 2, 240, 0.0008)
            call(other, "add_key_usage", elsewhere, 1, 7, 0.5)
            # One read for several keys, in the order asked (zeros for one not seen).
            found = call(other, "keys_usage", [elsewhere, f"tenant:{uuid4().hex}", key])
            assert [(r, t, round(c, 9)) for r, t, c in found] == [
                (1, 7, 0.5),
                (0, 0, 0.0),
                (4, 360, 0.0012),
            ]
            usages = call(store, "key_usages")
            assert {
                k: (r, t, round(c, 9)) for k, (r, t, c) in usages.items() if k in (key, elsewhere)
            } == {
                key: (4, 360, 0.0012),
                elsewhere: (1, 7, 0.5),
            }
        finally:
            close_store(other)
