"""Errors raised while a flow runs, and how a node's error is worded."""

from __future__ import annotations

from uuid import UUID


class NodeError(Exception):
    """A node failure whose message is complete as it is (no exception type prefix)."""


class NodeTimeoutError(NodeError, TimeoutError):
    """An attempt ran longer than the node's ``timeout``."""


class FlowStateError(ValueError):
    """The flow is not in a state that allows the operation (resume a completed flow, ...)."""


class FlowBusyError(FlowStateError):
    """Another process is running the flow right now (it holds the flow's lease).

    ``owner`` names that process (``host:pid:runner``), ``expires_at`` is when its
    lease runs out unless it renews it (seconds since the epoch).
    """

    def __init__(self, message: str, owner: str, expires_at: float) -> None:
        super().__init__(message)
        self.owner = owner
        self.expires_at = expires_at


class StoreNotSharedError(TypeError):
    """A remote dispatcher, or a worker of one, was given a store other processes
    cannot share (one in memory). A `TypeError`, as before it had a class of its own."""


class StoreUnavailableError(RuntimeError):
    """The store failed while the flow ran; the flow can be recovered once it is back."""


class UnstorableOutputError(RuntimeError):
    """A node produced data the store cannot save; the flow is failed (recovering it
    would only produce the same data again)."""


class LeaseLostError(RuntimeError):
    """This process no longer holds the flow's lease (another process took the flow
    over after the lease ran out, or the flow was stopped elsewhere); it commits
    nothing more for the flow."""


class StoppedElsewhereError(LeaseLostError):
    """Another process stopped the flow while this one drove it: the run ends as
    stopped (the stop and its event are in the store already)."""


class MissingExecutorError(LookupError):
    """This process has no executor for an activation's node type
    (`FlowStepper.execute`): nothing ran and nothing was written, so a process
    that has the executor can run the activation."""


def error_text(exc: BaseException) -> str:
    """How an executor's exception reads in a node's error."""
    text = str(exc)
    if isinstance(exc, NodeError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def fmt_seconds(value: float) -> str:
    return f"{value:g}"


class ChildFlowPending(Exception):
    """Raised through a node's executor by ``context.run_child`` / ``resume_child``
    when the child flow runs on a fleet's workers (`fleet_children`): the child is
    stored (or answered) and the node parks until it pauses or ends, then runs
    again. Executors let it pass."""

    def __init__(self, flow_id: UUID, *, running: bool = False) -> None:
        super().__init__(f"child flow {flow_id} runs on the workers")
        self.flow_id = flow_id
        #: The child was running already (the node ran again before it ended): the
        #: workers have its work, nothing is handed to them again.
        self.running = running
