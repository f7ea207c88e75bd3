"""`Engine`: one per process; owns the store, the dispatcher, executor resolution,
the listeners and the leases, and acts on any flow of any graph by its id.

Every front sits on an Engine: `FlowRunner` (one graph), qm-server, ``qm worker``
and its `FlowStepper`, the CLI. A stored flow brings its own graph (the snapshot).
What it owns, and what a running flow needs of it, are in `engine_parts`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Unpack
from uuid import UUID

from quartermaster_engine import history as past
from quartermaster_engine.events import FlowEvent
from quartermaster_engine.history import Checkpoint
from quartermaster_engine.runner import child_flows, new_flows, remote_run, stored_flows, timers
from quartermaster_engine.runner.arguments import flow_id_arg
from quartermaster_engine.runner.compiled import CompiledGraph
from quartermaster_engine.runner.engine_parts import DEFAULT_MAX_VISITS, EngineParts, EventHandler
from quartermaster_engine.runner.event_log import DEFAULT_POLL_SECONDS, read_log
from quartermaster_engine.runner.flow_run import FlowRun
from quartermaster_engine.runner.listeners import Listener, with_handler
from quartermaster_engine.runner.result import FlowResult
from quartermaster_engine.runner.schedules import EngineSchedules
from quartermaster_engine.types import GraphSpec


class Engine(EngineParts):
    """The engine of one process (see the module).

    ``store`` keeps flow state (default: a new `InMemoryStore`); ``dispatcher``
    decides how activations run (default: `SyncDispatcher`; one implementing only
    0.1.5's ``dispatch``/``wait_all``/``shutdown`` is wrapped in a `LegacyDispatcher`);
    ``registry`` maps node types to executors (None: every installed node executor
    plugin); ``context_manager`` cuts input messages to the context window;
    ``on_event`` and each of ``sinks`` (objects with ``emit(event)``) receive every
    event of every flow this engine drives. ``listener_budget``: see `runner.listeners`;
    ``clock``: docs/time.md; ``budgets`` and ``key_limits``: docs/limits.md.

    Build one with `from_config`; use it with ``async with`` or call `close`: it
    releases the backends it created, never objects passed in. Methods act by flow
    id and are ``async``; `FlowRunner` adds the synchronous forms for one graph.
    """

    @functools.cached_property
    def schedules(self) -> EngineSchedules:
        """Graphs started on a cron expression by the clock loop (`keep_clock`)."""
        return EngineSchedules(self)

    @classmethod
    def from_config(cls, config: Any = None, **overrides: Any) -> Engine:
        """An engine assembled from configuration (a dict, a TOML path, an
        `EngineConfig`, or None: the file and ``QM_*`` environment) and the installed
        plugins; ``overrides`` as `assembly.assemble` takes them. The engine owns the
        backends it created: `close` releases them."""
        from quartermaster_engine.assembly import assemble

        return assemble(config, overrides).build(cls)

    async def run_child(
        self, parent: FlowRun, graph: GraphSpec, input_text: str, flow_id: UUID
    ) -> FlowResult:
        """Run (or continue) a child flow of ``parent`` (see `child_flows`)."""
        return await child_flows.run_child(self, parent, graph, input_text, flow_id)

    async def resume_child(
        self, parent: FlowRun, flow_id: UUID, user_input: str, node_id: UUID | str | None
    ) -> FlowResult:
        """Answer a paused child flow of ``parent`` and continue it."""
        return await child_flows.resume_child(self, parent, flow_id, user_input, node_id)

    # -- new flows -------------------------------------------------------------------

    def new_run(
        self,
        graph: GraphSpec | CompiledGraph,
        input_message: str,
        flow_id: UUID | str | None = None,
        listeners: Iterable[Listener] = (),
        *,
        parent_flow_id: UUID | None = None,
    ) -> FlowRun:
        """A run of a new flow of ``graph``, checked and pre-flighted but not started."""
        return new_flows.new_run(self, graph, input_message, flow_id, listeners, parent_flow_id)

    async def run(
        self,
        graph: GraphSpec,
        input_message: str,
        flow_id: UUID | str | None = None,
        *,
        on_event: EventHandler | None = None,
        listeners: Iterable[Listener] = (),
        parent_flow_id: UUID | None = None,
    ) -> FlowResult:
        """Run a new flow of ``graph`` to its end or first pause; return its result.
        ``on_event`` (and ``listeners``) receive this flow's events besides the engine's."""
        extra = with_handler(on_event, listeners)
        return await new_flows.run(self, graph, input_message, flow_id, extra, parent_flow_id)

    async def start(
        self,
        graph: GraphSpec,
        input_message: str,
        flow_id: UUID | str | None = None,
        *,
        on_event: EventHandler | None = None,
        listeners: Iterable[Listener] = (),
    ) -> UUID:
        """Start a new flow of ``graph``; return its id once it is stored (see
        `new_flows.start`). Errors found before anything runs raise here."""
        extra = with_handler(on_event, listeners)
        return await new_flows.start(self, graph, input_message, flow_id, extra)

    async def submit(
        self, graph: GraphSpec, input_message: str, flow_id: UUID | str | None = None
    ) -> UUID:
        """Store a new flow with its start node queued, run nothing, return its id
        (see `new_flows.submit`). Needs a durable store."""
        return await new_flows.submit(self, graph, input_message, flow_id)

    def stream(
        self, graph: GraphSpec, input_message: str, flow_id: UUID | str | None = None
    ) -> AsyncIterator[FlowEvent]:
        """Run a new flow, yielding its events as they happen (breaking out stops it)."""
        return new_flows.stream(self, graph, input_message, flow_id)

    # -- driving ---------------------------------------------------------------------

    async def drive(self, run: FlowRun, on_end: Callable[[], None] | None = None) -> FlowResult:
        """Drive ``run`` in this process until it pauses or ends."""
        return await self.running.drive(run, on_end)

    async def proceed(self, run: FlowRun) -> FlowResult:
        """Drive the run here, or hand it to remote workers and follow it to a pause or end."""
        # Idle (a fork after a flow's last record): no worker would take it; its end
        # or pause is recorded here.
        if not self.remote or run.state.idle:
            return await self.running.drive(run)  # (not self.drive: one frame less in flight)
        after = await remote_run.hand_off(self, run)
        return await remote_run.follow(self, run.flow_id, after, run.started, run.extra_listeners)

    async def wake_due(self, limit: int = timers.WAKE_LIMIT) -> list[UUID]:
        """Wake flows parked on a timer that is due (docs/time.md); the ids woken here."""
        return await timers.wake_due(self, limit)

    async def keep_clock(
        self, every: float = timers.CLOCK_EVERY, *, stop: asyncio.Event | None = None
    ) -> None:
        """`wake_due` and `schedules.fire_due` every ``every`` seconds until cancelled
        or ``stop`` is set (then its background flows end or park first)."""
        await timers.keep_clock(self, every, stop)

    @property
    def active_flows(self) -> list[UUID]:
        """Flows running in this engine right now."""
        return self.running.active_ids()

    # -- stored flows, by id ---------------------------------------------------------

    async def resume(
        self,
        flow_id: UUID | str,
        user_input: str,
        node_id: UUID | str | None = None,
        *,
        on_event: EventHandler | None = None,
        listeners: Iterable[Listener] = (),
    ) -> FlowResult:
        """Answer a waiting node of a paused flow and continue it (`stored_flows.resume`)."""
        extra = with_handler(on_event, listeners)
        return await stored_flows.resume(self, flow_id, user_input, node_id, extra)

    async def recover(
        self,
        flow_id: UUID | str,
        *,
        wait: float = 0.0,
        on_event: EventHandler | None = None,
        listeners: Iterable[Listener] = (),
    ) -> FlowResult:
        """Continue a flow whose run was interrupted (see `stored_flows.recover`)."""
        return await stored_flows.recover(self, flow_id, wait, with_handler(on_event, listeners))

    def request_stop(self, flow_id: UUID | str) -> bool:
        """Stop a flow this engine drives, from any thread; False if it drives none."""
        return stored_flows.request_stop(self, flow_id)

    async def stop(self, flow_id: UUID | str, *, listeners: Iterable[Listener] = ()) -> None:
        """Stop a flow: nothing new starts, running executors are cancelled (async)
        or see ``context.cancelled`` (blocking); the flow ends as stopped. A flow
        paused or driven elsewhere is marked stopped in the store."""
        await stored_flows.stop(self, flow_id, list(listeners))

    async def result(self, flow_id: UUID | str, *, wait: bool = False) -> FlowResult:
        """A flow's result, running nothing (``wait``: once it settles; `stored_flows.result`)."""
        return await stored_flows.result(self, flow_id, wait=wait)

    async def history(self, flow_id: UUID | str) -> list[Checkpoint]:
        """One checkpoint per commit, oldest first (see `quartermaster_engine.history`)."""
        return await past.read_history(self._store, flow_id_arg(flow_id), self.store_name())

    async def update(self, flow_id: UUID | str, **edit: Unpack[past.Edit]) -> int:
        """Edit a paused, failed or stopped flow (see `history.edits.update`)."""
        return await past.edits.update(self, flow_id_arg(flow_id), **edit)

    async def retry(self, flow_id: UUID | str, *, listeners: Iterable[Listener] = ()) -> FlowResult:
        """Continue a failed flow from its failed activation (see `history.edits.retry`)."""
        return await past.edits.retry(self, flow_id_arg(flow_id), listeners)

    async def fork(self, flow_id: UUID | str, **edits: Unpack[past.ForkEdits]) -> UUID:
        """A new flow from a checkpoint, with edits (see `history.fork.fork`)."""
        return await past.fork.fork(self, flow_id_arg(flow_id), **edits)

    async def migrate(
        self,
        flow_id: UUID | str,
        to: GraphSpec,
        mapping: dict[str, str] | None = None,
        *,
        dry_run: bool = False,
    ) -> past.MigrationReport:
        """Move a paused or failed flow to graph ``to`` (``mapping``: old node name ->
        new node name); a refusal is reported, not raised (see `history.migrate`)."""
        return await past.migrate.migrate(self, flow_id_arg(flow_id), to, mapping, dry_run)

    async def lineage(self, flow_id: UUID | str) -> tuple[UUID, int] | None:
        """The (flow, checkpoint) a fork began from, or None (see `history.fork`)."""
        return await past.fork.lineage(self, flow_id_arg(flow_id))

    async def events(
        self,
        flow_id: UUID | str,
        *,
        after: int = 0,
        follow: bool = False,
        poll: float = DEFAULT_POLL_SECONDS,
    ) -> AsyncIterator[FlowEvent]:
        """The flow's events from the store's durable log (every event but tokens),
        numbered above ``after``; from any process. With ``follow`` it keeps
        yielding new events until the flow has ended (see `event_log.read_log`)."""
        fid = flow_id_arg(flow_id)
        async for event in read_log(self._store, fid, after=after, follow=follow, poll=poll):
            yield event


__all__ = ["DEFAULT_MAX_VISITS", "Engine", "EventHandler"]
