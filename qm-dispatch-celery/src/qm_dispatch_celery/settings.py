"""Settings of the ``celery`` dispatcher, as read from the ``[dispatcher]`` section.

Clients and workers read the same section: the client publishes activations to
``broker_url``/``queue``, workers consume them with these limits.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt


class CelerySettings(BaseModel):
    """``[dispatcher]`` with ``name = "celery"``, for example
    ``broker_url = "redis://broker:6379/1"`` and ``visibility_timeout = 7200``."""

    model_config = ConfigDict(extra="forbid")

    broker_url: str = Field(
        description="Celery broker: redis://host:port/db or amqp://user:pass@host:port/vhost."
    )
    queue: str = Field("quartermaster", description="Queue the activations go to.")
    visibility_timeout: PositiveFloat = Field(
        3600.0,
        description=(
            "Redis broker: seconds before a task a worker took and did not acknowledge is "
            "delivered again. Must be longer than the longest node (else the node runs "
            "twice; only one commit counts)."
        ),
    )
    restore_interval: PositiveInt = Field(
        10,
        description=(
            "Redis broker: seconds between a worker's looks for tasks whose visibility "
            "timeout has passed (a worker that died holding them)."
        ),
    )
    task_time_limit: PositiveFloat | None = Field(
        None, description="Hard time limit of one activation (the worker child is killed)."
    )
    task_soft_time_limit: PositiveFloat | None = Field(
        None, description="Soft time limit of one activation (the task is interrupted)."
    )
    stop_poll: PositiveFloat = Field(
        1.0,
        description=(
            "While a node runs, seconds between the worker's looks at the flow's status: "
            "a flow stopped elsewhere cancels its running nodes (context.cancelled)."
        ),
    )
    refuse_delay: float = Field(
        1.0,
        ge=0,
        description=(
            "Seconds a worker that lacks a node type waits before handing the task back "
            "(so workers without it do not pass it round in a tight loop)."
        ),
    )
    stale_after: PositiveFloat | None = Field(
        None,
        description=(
            "Worker sweep: a running flow unchanged for this many seconds has its pending "
            "activations published again (default: the visibility timeout)."
        ),
    )
    sweep_interval: PositiveFloat | None = Field(
        600.0,
        description=(
            "Seconds between a worker's sweeps (None: only when it starts). A sweep lists "
            "the store's running flows: keep it rare on stores with many flows."
        ),
    )
    modules: list[str] = Field(
        default_factory=list,
        description="Modules of node executors every worker imports (like qm worker -p).",
    )

    def stale_seconds(self) -> float:
        return self.visibility_timeout if self.stale_after is None else self.stale_after

    def celery_config(self) -> dict[str, Any]:
        """The Celery configuration these settings stand for (clients and workers)."""
        return {
            "broker_url": self.broker_url,
            "task_default_queue": self.queue,
            "task_serializer": "json",
            "accept_content": ["json"],
            "task_ignore_result": True,
            # At least once: acknowledge after the task ran, hand a task back when
            # its worker child dies, and reserve one task at a time.
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 1,
            "task_time_limit": self.task_time_limit,
            "task_soft_time_limit": self.task_soft_time_limit,
            "broker_transport_options": {
                "visibility_timeout": self.visibility_timeout,
                "unacked_restore_interval": self.restore_interval,
                "unacked_restore_throttle": 1,
            },
            "broker_connection_retry_on_startup": True,
            "worker_hijack_root_logger": False,
            **self._transport(),
        }

    def _transport(self) -> dict[str, str]:
        """A Redis broker gets the transport that dead-letters malformed messages
        (`qm_dispatch_celery.redis_transport`); other brokers keep kombu's own."""
        if urlsplit(self.broker_url).scheme.lower() in ("redis", "rediss"):
            return {"broker_transport": "qm_dispatch_celery.redis_transport:Transport"}
        return {}
