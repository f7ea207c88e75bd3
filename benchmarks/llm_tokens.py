"""Engine overhead per streamed token: from the provider to an ``on_event`` handler and to a
``run_async`` consumer.

A fake in-process provider emits N tokens with no delay through an Instruction1 node
(the pack's real executor, streaming through ``context.emit_token``). The overhead per
token is (time with N tokens - time with 0 tokens) / N, which removes the flow's fixed
cost; the provider's own loop (calling a no-op function N times) is measured apart
and subtracted. Median of --runs runs per path. Target: <= 5 µs per token.

Paths:
- on_event: an ``async def`` provider on the event loop (the openai/anthropic providers);
- run_async: the same, consumed by ``async for event in runner.run_async(...)``;
- on_event, worker thread: a provider that generates in a worker thread, as the
  llamacpp provider does (tokens cross to the loop through its `LoopRelay`).

    .venv/bin/python benchmarks/llm_tokens.py [--tokens 200000] [--runs 5] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import time
from collections.abc import Callable
from typing import Any

from qm_nodes_llm import (
    InstructionExecutor,
    LLMNodeSettings,
    LLMRequest,
    LLMResponse,
    StaticProviders,
)
from qm_nodes_llm.providers.common import LoopRelay
from quartermaster_engine import FlowRunner, SimpleNodeRegistry, TokenGenerated
from quartermaster_engine.testing import build_graph

TARGET_US = 5.0


class FakeTokens:
    """Emits ``n`` tokens as fast as it can, on the loop or from a worker thread."""

    name = "fake"

    def __init__(self, n: int, threaded: bool = False) -> None:
        self.n = n
        self.threaded = threaded

    def describe(self) -> str:
        return "fake token source"

    def default_model(self) -> str | None:
        return "fake"

    def _emit(self, on_token: Callable[[str], None] | None) -> None:
        if on_token is None:
            return
        for _ in range(self.n):
            on_token("tok")

    async def complete(
        self,
        request: LLMRequest,
        on_token: Callable[[str], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> LLMResponse:
        if self.threaded:
            # As the llamacpp provider does: tokens cross to the loop through a relay.
            loop = asyncio.get_running_loop()
            relay = None if on_token is None else LoopRelay(loop, on_token)
            await asyncio.to_thread(self._emit, relay)
        else:
            self._emit(on_token)
        return LLMResponse(text="done", model="fake")


def make_runner(n: int, threaded: bool, on_event: Any = None) -> FlowRunner:
    spec = build_graph(
        {"Start": "Start1", "Answer": "Instruction1", "End": "End1"},
        [("Start", "Answer"), ("Answer", "End")],
        name="tokens",
    )
    executor = InstructionExecutor(
        LLMNodeSettings(provider="fake"),
        providers=StaticProviders({"fake": FakeTokens(n, threaded)}),
    )
    return FlowRunner(spec, SimpleNodeRegistry({"Instruction1": executor}), on_event=on_event)


def time_on_event(n: int, threaded: bool) -> float:
    count = 0

    def handler(event: Any) -> None:
        nonlocal count
        if type(event) is TokenGenerated:
            count += 1

    runner = make_runner(n, threaded, handler)
    runner.run("warm up")
    count = 0
    started = time.perf_counter()
    result = runner.run("go")
    elapsed = time.perf_counter() - started
    if not result.success or count != n:
        raise SystemExit(f"the benchmark flow went wrong: {result.error}, {count} tokens")
    return elapsed


def time_run_async(n: int) -> float:
    runner = make_runner(n, threaded=False)

    async def consume() -> int:
        count = 0
        async for event in runner.run_async("go"):
            if type(event) is TokenGenerated:
                count += 1
        return count

    asyncio.run(consume())  # warm up
    started = time.perf_counter()
    count = asyncio.run(consume())
    elapsed = time.perf_counter() - started
    assert count == n, count
    return elapsed


def provider_loop(n: int) -> float:
    """The fake provider's own cost: calling a no-op function n times."""

    def sink(token: str) -> None:
        return None

    started = time.perf_counter()
    FakeTokens(n)._emit(sink)
    return time.perf_counter() - started


def per_token(measure: Callable[[int], float], n: int, runs: int) -> float:
    """Median over runs of (t(n) - t(0)) / n, in µs."""
    samples = []
    for _ in range(runs):
        samples.append((measure(n) - measure(0)) / n * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="profile the on_event path")
    args = parser.parse_args()
    n = args.tokens

    loop_cost = statistics.median(provider_loop(n) / n * 1e6 for _ in range(args.runs))
    rows = [
        ("on_event", per_token(lambda k: time_on_event(k, False), n, args.runs)),
        ("run_async", per_token(time_run_async, n, args.runs)),
        ("on_event, worker thread", per_token(lambda k: time_on_event(k, True), n, args.runs)),
    ]
    print(f"{n:,} tokens per run, median of {args.runs} runs")
    print(f"provider's own loop: {loop_cost:.3f} µs per token (subtracted below)")
    print(f"{'path':<26}{'total µs/token':>16}{'engine µs/token':>17}   target <= {TARGET_US} µs")
    for name, total in rows:
        engine = total - loop_cost
        verdict = "ok" if engine <= TARGET_US else "OVER"
        print(f"{name:<26}{total:>16.3f}{engine:>17.3f}   {verdict}")

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        time_on_event(n, False)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
