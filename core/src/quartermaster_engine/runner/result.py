"""The result of a flow (`FlowResult`); defined in `quartermaster_engine.flow_result`,
where the executor's context can name it without importing the runner."""

from quartermaster_engine.flow_result import Captures, FlowResult, NodeResults, WaitingNode

__all__ = ["Captures", "FlowResult", "NodeResults", "WaitingNode"]
