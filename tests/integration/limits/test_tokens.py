"""LLM tokens per window (``[limits."<key>"] max_tokens``, ``per``): each record's
tokens (``usage``, which the LLM pack writes from the provider's answer) are
counted once its commit was accepted, in the store every process shares; an
activation starts only while fewer than ``max_tokens`` are in the window. The LLM
pack's fake OpenAI-compatible server answers every call with 11 + 7 = 18 tokens."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI, completion
from limit_support import config, finish, start
from limit_worker import llm_chain

from quartermaster_engine import Engine
from quartermaster_engine.assembly import build_store
from quartermaster_engine.budgets import flow_usage
from quartermaster_engine.config import EngineConfig
from quartermaster_engine.runner.local_slots import LocalSlots
from quartermaster_engine.stores.adapter import StoreAdapter, _done
from quartermaster_engine.testing import TestClock

KEY = "llm:openai:gpt-4o-mini"


def counted(store_config: dict[str, Any]) -> list[tuple[float, int]]:
    """Every count of ``KEY`` still in the store (a window of a day)."""

    async def read() -> list[tuple[float, int]]:
        store = build_store(EngineConfig.model_validate({"store": store_config}))
        try:
            used = await _done(store.tokens_in_window(KEY, 86400.0, time.time()))
            return [(float(at), int(n)) for at, n in used]
        finally:
            await StoreAdapter(store).close()

    return asyncio.run(read())


@pytest.mark.slow
def test_a_process_waits_for_the_tokens_another_used(
    shared_store: dict[str, Any], openai_server: FakeOpenAI
) -> None:
    """``max_tokens = 36`` per 10 s: a process runs a flow of 2 LLM calls (36 tokens,
    the second starting with 18 in the window); a second process started right
    after finds the window full and starts its call only once the first 18 tokens
    left it, 10 s after they were counted."""
    openai_server.default = completion("ok", model="gpt-4o-mini")
    cfg = config(shared_store, openai_server, None, max_tokens=36, per="10s")
    assert finish(start(config=cfg, flows=1, nodes=2)) == [["completed", None]]
    first = counted(shared_store)
    assert [n for _, n in first] == [18, 18]  # each call's record counted once
    launched = time.monotonic()
    assert finish(start(config=cfg, flows=1, nodes=1)) == [["completed", None]]
    # (The third count dropped those that had left its window.)
    assert counted(shared_store)[-1][1] == 18
    # The server's arrival times (this process's monotonic clock): the second call
    # of the flow did not wait; the second process asked while the window was full,
    # and its call went out once the first call's tokens (counted after its answer)
    # had left the window.
    arrivals = openai_server.arrivals
    assert len(arrivals) == 3
    assert arrivals[1] - arrivals[0] < 10.0
    assert launched < arrivals[0] + 10.0
    assert arrivals[2] - arrivals[0] >= 10.0


class RecordingTokens(LocalSlots):
    """In-process token counts, recording every count made."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: list[tuple[str, float, int]] = []

    def add_tokens(self, key: str, tokens: int, now: float, per: float) -> None:
        self.counts.append((key, now, tokens))
        super().add_tokens(key, tokens, now, per)


def test_on_the_memory_store_a_flow_waits_for_its_own_tokens(
    openai_server: FakeOpenAI,
) -> None:
    """One process, a chain of 4 LLM calls, ``max_tokens = 36`` per second: the
    third call waits until the first call's tokens leave the window, the fourth
    until the second's; 4 x 18 tokens counted, each once."""
    openai_server.default = completion("ok", model="gpt-4o-mini")
    recording = RecordingTokens()

    async def go() -> str:
        cfg = config({"name": "memory"}, openai_server, None, max_tokens=36, per="1s")
        async with Engine.from_config(cfg) as engine:
            assert engine.key_limits is not None
            # The window checks read the counts where the commits make them.
            engine.key_limits.tokens = engine.key_limits.windows = recording
            result = await engine.run(llm_chain(4), "q")
        return result.status.value

    assert asyncio.run(go()) == "completed"
    assert [(key, n) for key, _, n in recording.counts] == [(KEY, 18)] * 4
    arrivals = openai_server.arrivals
    assert len(arrivals) == 4
    times = [at for _, at, _ in recording.counts]
    # Each count is made after its call's answer; a call starts only once the
    # count two before it has left the window.
    assert arrivals[2] - arrivals[0] >= 1.0 - 0.01
    assert arrivals[3] - arrivals[1] >= 1.0 - 0.01
    assert times[2] - times[0] >= 1.0
    assert times[3] - times[1] >= 1.0


def test_a_table_needs_a_limit(tmp_path: Path) -> None:
    (tmp_path / "qm.toml").write_text("[limits.'llm:*']\nper = '1m'\n")
    qm = str(Path(sys.executable).parent / "qm")
    shown = subprocess.run([qm, "limits"], cwd=tmp_path, capture_output=True, text=True)
    assert shown.returncode != 0
    assert "a key's table needs max_in_flight, max_requests or max_tokens" in shown.stderr


def test_budgets_count_the_tokens_the_llm_pack_records(openai_server: FakeOpenAI) -> None:
    """The LLM pack writes usage under ``output_data["llm"]``: budgets count it (2 calls
    x 18 tokens, priced by the model's entry)."""
    openai_server.default = completion("ok", model="gpt-4o-mini")

    async def go() -> dict[str, Any]:
        cfg = config({"name": "memory"}, openai_server, None)
        cfg["budgets"] = {"max_tokens": 1000, "prices": {"gpt-4o-*": {"input": 1, "output": 2}}}
        async with Engine.from_config(cfg) as engine:
            result = await engine.run(llm_chain(2), "q")
            assert result.status.value == "completed"
            snapshot = await engine.flows.show(result.flow_id)
            return flow_usage(snapshot.records, engine.budgets).to_dict()

    usage = asyncio.run(go())
    assert (usage["input_tokens"], usage["output_tokens"], usage["tokens"]) == (22, 14, 36)
    assert usage["cost"] == (22 * 1 + 14 * 2) / 1_000_000


def test_the_token_window_runs_on_the_engines_clock(openai_server: FakeOpenAI) -> None:
    """With a `TestClock` (skipping ahead on waits): a chain of 4 LLM calls and
    ``max_tokens = 36`` a minute. The first two calls count 18 tokens each at the
    clock's start; the third waits until both counts left the window (60 s of the
    clock, no real minute) and the fourth then finds 18 in it and goes on."""
    openai_server.default = completion("ok", model="gpt-4o-mini")
    recording = RecordingTokens()
    clock = TestClock()
    start = clock.now()
    began = time.monotonic()

    async def go() -> str:
        cfg = config({"name": "memory"}, openai_server, None, max_tokens=36, per="1m")
        async with Engine.from_config(cfg, clock=clock) as engine:
            assert engine.key_limits is not None
            # The window checks read the counts where the commits make them.
            engine.key_limits.tokens = engine.key_limits.windows = recording
            result = await engine.run(llm_chain(4), "q")
        return result.status.value

    assert asyncio.run(go()) == "completed"
    assert time.monotonic() - began < 30.0  # not a real minute
    assert [(key, n) for key, _, n in recording.counts] == [(KEY, 18)] * 4
    at = [when - start for _, when, _ in recording.counts]
    assert at[0] == at[1] == 0.0
    assert 60.0 <= at[2] < 61.0
    assert at[3] == at[2]
    assert len(openai_server.requests) == 4
