"""The runner: compiles a graph once and schedules its activations."""

from quartermaster_engine.runner.flow_runner import (
    DEFAULT_MAX_VISITS,
    FlowRunner,
    NodeConfigError,
    UnknownNodeTypeError,
)
from quartermaster_engine.runner.result import FlowResult, NodeResults, WaitingNode
from quartermaster_engine.runner.scheduler import (
    FlowStateError,
    StoreUnavailableError,
    UnstorableOutputError,
)

__all__ = [
    "DEFAULT_MAX_VISITS",
    "FlowResult",
    "FlowRunner",
    "FlowStateError",
    "NodeConfigError",
    "NodeResults",
    "StoreUnavailableError",
    "UnknownNodeTypeError",
    "UnstorableOutputError",
    "WaitingNode",
]
