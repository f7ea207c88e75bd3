"""Following a flow that remote workers advance (see `dispatchers.remote`).

The client relays the flow's events from the store's durable log to the
engine's listeners as workers commit them, with its child flows' (see
`child_relay`) and the tokens workers stream meanwhile when the store has a
`LiveChannel` (see `live_tokens`), and reads the result from the store once
the flow has paused or ended.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from quartermaster_engine.dispatchers.remote import RemoteDispatcher
from quartermaster_engine.events import FlowEvent
from quartermaster_engine.runner import fleet_children
from quartermaster_engine.runner.child_relay import ChildLogs
from quartermaster_engine.runner.event_log import read_log
from quartermaster_engine.runner.result import FlowResult
from quartermaster_engine.stores.live import live_channel

if TYPE_CHECKING:
    from quartermaster_engine.runner.engine import Engine
    from quartermaster_engine.runner.flow_run import FlowRun
    from quartermaster_engine.types import GraphSpec

logger = logging.getLogger("quartermaster_engine.runner")

Listener = tuple[str, Callable[[FlowEvent], Any]]


async def relay(
    engine: Engine, flow_id: UUID, after: int, listeners: Iterable[Listener]
) -> AsyncIterator[FlowEvent]:
    """The flow's logged events above ``after`` until it pauses or ends, the
    live tokens of its nodes (and its child flows') meanwhile, and the logged
    events of the child flows it waits for (`child_relay`), each also given to
    ``listeners`` (a failing listener is logged, never breaks the run)."""
    targets = [*engine.listeners(), *listeners]
    channel = live_channel(engine.store_adapter)
    # Subscribed before the log is read: no token published from here on is missed.
    live = None if channel is None else await channel.subscribe_live(flow_id)
    store = engine.store_adapter
    children = ChildLogs(store)
    try:
        async for event in read_log(
            store, flow_id, after=after, follow=True, until_paused=True, live=live,
            children=children,
        ):  # fmt: skip
            for name, listener in targets:
                try:
                    listener(event)
                except Exception:
                    logger.exception("event listener %s failed on %s", name, event.type)
            yield event
    finally:
        if live is not None:
            await live.close()


async def follow(
    engine: Engine,
    flow_id: UUID,
    after: int,
    started: float,
    listeners: Iterable[Listener] = (),
) -> FlowResult:
    """Relay the flow's events until it pauses or ends; return its stored result,
    timed from ``started`` (`time.monotonic`)."""
    async for _ in relay(engine, flow_id, after, listeners):
        pass
    result = await engine.result(flow_id)
    return dataclasses.replace(result, duration_seconds=time.monotonic() - started)


async def hand_off(engine: Engine, run: FlowRun) -> int:
    """Let the flow's lease go and give its pending activations to the remote
    workers; return the number of the last event logged before."""
    await run.lease.release()
    record = await engine.store_adapter.get_flow(run.flow_id)
    dispatcher = engine.dispatcher
    assert isinstance(dispatcher, RemoteDispatcher)
    await dispatcher.start(engine, run.flow_id)
    if run.state.children:  # (recover: its children on the workers continue too)
        await fleet_children.relaunch(engine, run.flow_id, running=True)
    return int(record.event_seq) if record is not None else 0


async def run_async(
    engine: Engine, graph: GraphSpec, input_message: str, flow_id: UUID | str | None
) -> AsyncIterator[FlowEvent]:
    """`Engine.stream` with a remote dispatcher: the client's own events
    (FlowStarted), then the workers' from the durable log; breaking out of the
    iteration stops the flow."""
    own: list[FlowEvent] = []
    run = engine.new_run(graph, input_message, flow_id, [("run_async", own.append)])
    await run.start_new()
    after = await hand_off(engine, run)
    settled = False
    try:
        for event in own:
            yield event
        async for event in relay(engine, run.flow_id, after, ()):
            yield event
        settled = True
    finally:
        if not settled:
            await engine.stop(run.flow_id)
