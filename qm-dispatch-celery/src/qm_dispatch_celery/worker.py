"""The worker side: what one ``qm.activation`` task does, and the recovery sweep.

Per task: `FlowStepper.execute` runs the activation's executor without the
flow's lease (branches of one flow run at once on many workers; None means the
activation was committed already: a duplicate delivery, dropped), then
`FlowStepper.complete` does the bookkeeping under a short lease with one fenced
commit (a duplicate changes nothing), then one task is published per activation
that commit queued. The next work comes only from what was committed (a
transactional outbox); activations committed but never published (the worker
died in between) are published again by the sweep or by ``recover``. Tokens
the executor streams are published live on the store's `LiveChannel` (when it
has one), all of them before the commit.

Each worker process (a prefork child, or the main process for the sweep) has
its own `Engine`, made on first use; each thread (``--pool threads``) its own
stepper and event loop, so the flow states a stepper caches are never shared.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from functools import partial
from typing import Any
from uuid import UUID

from celery import Celery

from qm_dispatch_celery.celery_app import publish
from qm_dispatch_celery.executor_modules import load_executor_modules
from qm_dispatch_celery.settings import CelerySettings
from quartermaster_engine import assembly
from quartermaster_engine._sync import run_sync
from quartermaster_engine.config import EngineConfig
from quartermaster_engine.dispatchers.async_dispatcher import AsyncDispatcher
from quartermaster_engine.plugins.loader import PluginNodeRegistry
from quartermaster_engine.redaction import redact_setting, redact_text
from quartermaster_engine.runner import fleet_children
from quartermaster_engine.runner.engine import Engine
from quartermaster_engine.runner.limit_waits import giving_back
from quartermaster_engine.runner.live_tokens import TokenPublisher
from quartermaster_engine.runner.queue_refs import ActivationRef
from quartermaster_engine.runner.shared_store import require_shared_store
from quartermaster_engine.runner.stepper import FlowStepper
from quartermaster_engine.stores.live import live_channel
from quartermaster_engine.stores.records import FlowStatus

logger = logging.getLogger("qm_dispatch_celery")


class Launcher:
    """A `FlowLauncher` inside a worker: publishes a stored flow's pending activations."""

    def __init__(self, app: Celery, settings: CelerySettings) -> None:
        self.app = app
        self.settings = settings

    async def start(self, engine: Engine, flow_id: UUID) -> int:
        pending = await FlowStepper(engine).pending(flow_id)
        for ref, due in pending:
            publish(self.app, self.settings, flow_id, ref, due)
        return len(pending)


class Worker:
    """What runs inside one worker process: an `Engine` over the configured store,
    with the installed node executors and those of ``modules``."""

    def __init__(
        self, config: EngineConfig, settings: CelerySettings, app: Celery, modules: Sequence[str]
    ) -> None:
        self.config = config
        self.settings = settings
        self.app = app
        self.modules = list(modules)
        self._pid: int | None = None
        self._engine: Engine | None = None
        self._local = threading.local()
        self._lock = threading.Lock()

    def check(self) -> None:
        """Fail now, not at the first task, when the modules or the store are wrong."""
        engine = self._make_engine()
        try:
            # A worker on a store of its own would take tasks and find no flow.
            require_shared_store(
                engine.store,
                "a worker of the celery dispatcher runs flows its clients store, in other "
                "processes",
            )
        finally:
            engine.close()

    def describe(self) -> str:
        """What this worker works on, for its start-up line: store (with its settings)
        and broker; passwords and secrets masked."""
        store = self.config.store
        settings = ", ".join(
            f"{key}={redact_setting(f'store.{key}', value)}"
            for key, value in store.settings.items()
        )
        store_text = f"{store.name} ({settings})" if settings else store.name
        broker = redact_text(self.settings.broker_url)
        return f"store {store_text}, broker {broker}, queue {self.settings.queue}"

    @property
    def engine(self) -> Engine:
        """This process's engine (made anew in a forked child)."""
        with self._lock:
            if self._engine is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._engine = self._make_engine()
            return self._engine

    @property
    def stepper(self) -> FlowStepper:
        """This thread's stepper over this process's engine."""
        engine = self.engine
        stepper: FlowStepper | None = getattr(self._local, "stepper", None)
        if stepper is None or stepper.engine is not engine:
            stepper = self._local.stepper = FlowStepper(engine)
        return stepper

    def _make_engine(self) -> Engine:
        own = load_executor_modules(self.modules)
        config = self.config

        def validate(registration: Any, raw: Any) -> Any:
            return assembly.settings_for(registration, raw, config, f"nodes.{registration.name}")

        node_settings = {k: v for k, v in config.nodes.items() if k in own}
        config_for_installed = config.model_copy(
            update={"nodes": {k: v for k, v in config.nodes.items() if k not in own}}
        )
        engine = Engine.from_config(
            config_for_installed,
            dispatcher=AsyncDispatcher(),
            node_registry=PluginNodeRegistry(own, node_settings, validate),
        )
        # Child flows of sub-graph nodes run on the fleet, not inside this task.
        engine.fleet = Launcher(self.app, self.settings)
        return engine

    async def handle(
        self, flow_id: UUID, ref: ActivationRef, *, waiter: str | None = None, again: bool = False
    ) -> str:
        """Run one activation and publish what its commit queued; says what happened
        (``ran <node>``, ``duplicate``). Raises `MissingExecutorError` (nothing ran).
        With ``waiter`` (the task's id; ``again``: the task came back), an activation
        over a limit key raises `LimitWait` instead of waiting (`giving_back`)."""
        stepper = self.stepper
        channel = live_channel(stepper.engine.store_adapter)
        tokens = None
        if channel is not None:
            ancestors = partial(fleet_children.ancestors, stepper.engine)
            tokens = TokenPublisher(channel, flow_id, ancestors)
        try:
            listeners = () if tokens is None else [("live tokens", tokens.listener)]
            with giving_back(waiter, again=again) if waiter else contextlib.nullcontext():
                work = await stepper.execute(
                    flow_id, ref, stop_poll=self.settings.stop_poll, listeners=listeners
                )
        finally:
            if tokens is not None:
                await tokens.close()  # every token out before the commit
        if work is None:
            return "duplicate"
        result = await stepper.complete(work, wait=max(30.0, self.settings.stale_seconds()))
        if result.duplicate:
            return "duplicate"
        for queued, due in result.queued:
            publish(self.app, self.settings, flow_id, queued, due)
        fleet = stepper.engine.fleet
        for child in result.children:  # stored by the node, which now waits for it
            assert fleet is not None  # (only a fleet's run_child stores children)
            await fleet.start(stepper.engine, child)
        return f"ran {result.ran}"

    async def sweep(self, stale_after: float) -> int:
        """Publish again the pending activations of every running flow unchanged for
        ``stale_after`` seconds; return how many were published."""
        stepper = self.stepper
        store = stepper.engine.store_adapter
        flows = await store.list_flows(status=FlowStatus.RUNNING)
        now = time.time()
        published = 0
        for record in flows:
            if now - record.updated_at < stale_after:
                continue
            if await fleet_children.stop_if_orphaned(stepper.engine, record):
                continue  # a child whose parent ended before it was handed over
            for ref, due in await stepper.pending(record.flow_id):
                publish(self.app, self.settings, record.flow_id, ref, due)
                published += 1
            # A parent whose child ended while its wake was lost (a killed worker): woken.
            await fleet_children.relaunch(stepper.engine, record.flow_id, running=False)
        if published:
            logger.warning("sweep: published %d pending activations of idle flows", published)
        return published

    def start_sweeping(self) -> threading.Thread:
        """Sweep now, then every ``sweep_interval`` seconds, on a daemon thread."""

        def loop() -> None:
            while True:
                try:
                    run_sync(self.sweep(self.settings.stale_seconds()))
                except Exception:
                    logger.exception("sweep failed; trying again at the next interval")
                if self.settings.sweep_interval is None:
                    return
                time.sleep(self.settings.sweep_interval)

        thread = threading.Thread(target=loop, name="qm-sweep", daemon=True)
        thread.start()
        return thread
