"""Settings of the ``thread`` dispatcher, as read from configuration."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, PositiveInt


def default_max_workers() -> int:
    """``min(32, CPUs + 4)``, as for `concurrent.futures.ThreadPoolExecutor`: blocking
    executors mostly wait on I/O, so more threads than CPUs pay off."""
    return min(32, (os.cpu_count() or 1) + 4)


class ThreadDispatcherSettings(BaseModel):
    """The ``[dispatcher]`` section with ``name = "thread"``, for example
    ``max_workers = 16`` and ``type_limits = { "Instruction1" = 4 }``."""

    model_config = ConfigDict(extra="forbid")

    max_workers: PositiveInt = Field(
        default_factory=default_max_workers,
        description="Worker threads, shared by every flow the dispatcher serves.",
    )
    type_limits: dict[str, PositiveInt] = Field(
        default_factory=dict,
        description=(
            "Node type -> most calls of that type running at once; the other types "
            "use the rest of the pool."
        ),
    )
