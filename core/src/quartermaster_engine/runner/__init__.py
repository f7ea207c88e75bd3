"""The runner: compiles a graph once and schedules its activations."""

from quartermaster_engine.runner.engine import Engine
from quartermaster_engine.runner.errors import (
    FlowBusyError,
    FlowStateError,
    LeaseLostError,
    StoreNotSharedError,
    StoreUnavailableError,
    UnstorableOutputError,
)
from quartermaster_engine.runner.flow_runner import (
    DEFAULT_MAX_VISITS,
    FlowRunner,
    NodeConfigError,
    UnknownNodeTypeError,
)
from quartermaster_engine.runner.result import FlowResult, NodeResults, WaitingNode

__all__ = [
    "DEFAULT_MAX_VISITS",
    "Engine",
    "FlowBusyError",
    "FlowResult",
    "FlowRunner",
    "FlowStateError",
    "LeaseLostError",
    "NodeConfigError",
    "NodeResults",
    "StoreNotSharedError",
    "StoreUnavailableError",
    "UnknownNodeTypeError",
    "UnstorableOutputError",
    "WaitingNode",
]
