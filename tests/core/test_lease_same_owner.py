"""Keepers of one runner (same owner) in one process: steps running at once take
turns with the flow's lease; only a keeper that let go is taken over at once."""

from __future__ import annotations

import asyncio

import pytest

from quartermaster_engine import FlowRunner, InMemoryStore, SimpleNodeRegistry
from quartermaster_engine.runner.errors import FlowBusyError
from quartermaster_engine.testing import chain_graph


async def _flow() -> tuple[FlowRunner, object]:
    registry = SimpleNodeRegistry({"echo": lambda ctx: ctx.input_text})
    runner = FlowRunner(chain_graph(3), registry, store=InMemoryStore())
    return runner, await runner.asubmit("x")


def test_a_holder_of_the_same_runner_is_waited_for_not_taken_over() -> None:
    async def go() -> None:
        runner, fid = await _flow()
        first, second = runner.lease_for(fid), runner.lease_for(fid)  # type: ignore[arg-type]
        held = await first.acquire()
        with pytest.raises(FlowBusyError):
            await second.acquire(wait=0.0)
        waiting = asyncio.ensure_future(second.acquire(wait=5.0))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await first.release()
        taken = await asyncio.wait_for(waiting, 5)
        assert taken.epoch == held.epoch + 1
        await second.release()

    asyncio.run(go())


def test_a_keeper_that_stopped_without_releasing_is_taken_over_at_once() -> None:
    async def go() -> None:
        runner, fid = await _flow()
        first, second = runner.lease_for(fid), runner.lease_for(fid)  # type: ignore[arg-type]
        held = await first.acquire()
        first.stop()  # its run is over (cancelled) and left the lease in the store
        taken = await second.acquire(wait=0.0)
        assert taken.epoch == held.epoch + 1
        await second.release()

    asyncio.run(go())
