"""A process of the limit tests: ``python limit_worker.py '<json args>'``.

Builds one Engine from ``config`` (store, ``[limits]``, the LLM nodes sent to the
fake server) and runs ``flows`` flows at once, each a chain of ``nodes``
Instruction1 nodes; prints one JSON line: each flow's status and error, and when
the store let each limited start through (``starts``, this process's clock).
Touches ``ready`` (if given) once the engine is built; with ``warm``, first runs
one flow calling the model ``warmup`` (its HTTP client's first, slow call).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import sys
from pathlib import Path
from typing import Any

# Imported now, not on the first call: a waiting worker's request then goes out as
# soon as it has its slot (the kill test times it).
import openai  # noqa: F401

from quartermaster_engine import Engine
from quartermaster_engine.testing.graphs import build_graph
from quartermaster_graph import GraphSpec


def llm_chain(nodes: int, model: str = "gpt-4o-mini") -> GraphSpec:
    names = ["Start", *(f"ask{i}" for i in range(nodes)), "End"]
    specs: dict[str, Any] = {"Start": "Start1", "End": "End1"}
    for name in names[1:-1]:
        specs[name] = {
            "type": "Instruction1",
            "metadata": {"llm_model": model, "llm_stream": False},
        }
    return build_graph(specs, list(itertools.pairwise(names)), name="asks")


class RecordingStarts:
    """The engine's window checks (the shared store's, in their line's order),
    recording each start they allow."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.starts: list[float] = []

    async def take_request_in_line(self, ask: Any) -> Any:
        turn = self.inner.take_request_in_line(ask)
        place, wait = (await turn) if inspect.isawaitable(turn) else turn
        if int(place) == 0:
            self.starts.append(ask.now)
        return place, wait

    async def take_tokens_in_line(self, ask: Any, leave: bool) -> Any:
        turn = self.inner.take_tokens_in_line(ask, leave=leave)
        return (await turn) if inspect.isawaitable(turn) else turn


async def main(args: dict[str, Any]) -> dict[str, Any]:
    async with Engine.from_config(args["config"], lease_seconds=args.get("lease", 30.0)) as eng:
        if args.get("warm"):  # the HTTP client's first call, outside the limited key
            await eng.run(llm_chain(1, "warmup"), "warm")
        if args.get("ready"):
            Path(args["ready"]).touch()  # noqa: ASYNC240 - once, before the flows
        recording = None
        if eng.key_limits is not None:
            recording = eng.key_limits.windows = RecordingStarts(eng.key_limits.windows)
        graph = llm_chain(args["nodes"])
        results = await asyncio.gather(*(eng.run(graph, f"q{i}") for i in range(args["flows"])))
    return {
        "results": [[r.status.value, r.error] for r in results],
        "starts": [] if recording is None else recording.starts,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
