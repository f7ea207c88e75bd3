"""The end of a run: the flow's status, its last events, its record, its result."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from quartermaster_engine.events import FlowFinished, FlowPaused, FlowStopped
from quartermaster_engine.runner.control import Phase
from quartermaster_engine.runner.errors import (
    LeaseLostError,
    StoppedElsewhereError,
    StoreUnavailableError,
    UnstorableOutputError,
    error_text,
)
from quartermaster_engine.runner.result import Captures, FlowResult, NodeResults, WaitingNode
from quartermaster_engine.runner.routing import stalled_join
from quartermaster_engine.stores.records import FlowStatus, FlowUpdate

logger = logging.getLogger("quartermaster_engine.runner")

if TYPE_CHECKING:
    from quartermaster_engine.runner.flow_run import FlowRun


def decide(run: FlowRun) -> tuple[FlowStatus, str | None]:
    """The flow's status and error, from the run's phase and state."""
    control = run.control
    state = run.state
    phase = control.phase
    if isinstance(control.abort, StoppedElsewhereError):
        return FlowStatus.STOPPED, None
    if phase is Phase.ABORTED:
        return FlowStatus.FAILED, str(control.abort)
    if phase is Phase.STOPPING:
        return FlowStatus.STOPPED, None
    if state.failures:
        return FlowStatus.FAILED, describe_failure(run)
    if state.waiting or state.timers:  # (timers: parked, see `runner.timers`)
        return FlowStatus.PAUSED, None
    stalled = stalled_join(run.cg, state)
    if stalled is not None:
        return FlowStatus.FAILED, stalled
    return FlowStatus.COMPLETED, None


async def key_usage(run: FlowRun) -> dict[str, dict[str, Any]] | None:
    """The totals and budgets of the flow's budgeted keys (`FlowFinished.key_usage`):
    one store read; None if it fails (the flow's end is recorded all the same)."""
    budgets = run.caller.key_budgets
    if budgets is None:
        return None
    try:
        return await budgets.graph_usage(run.cg, run.host.executor_for)
    except Exception as exc:
        logger.warning("usage of flow %s's keys not read: %s", run.flow_id, exc)
        return None


async def finish(run: FlowRun) -> FlowResult:
    """Emit the flow's last event, record its end in the store (releasing the
    lease), and return its result."""
    status, error = decide(run)
    control = run.control
    end = run.state.end_record
    final_output = (end.result or "") if end is not None else ""
    output_data = end.output_data if end is not None else {}
    wakes_at = first_timer(run) if status is FlowStatus.PAUSED else None
    emitter = run.emitter
    if emitter.listening and control.phase is not Phase.ABORTED:
        if status is FlowStatus.STOPPED:
            emitter.emit(FlowStopped(flow_id=run.flow_id, reason=control.stop_reason))
        elif status is FlowStatus.PAUSED:
            waiting = [k[0] for k in run.state.waiting]
            emitter.emit(FlowPaused(flow_id=run.flow_id, waiting=waiting, wakes_at=wakes_at))
        else:
            usage = run.state.usage
            keys = None if run.caller.key_budgets is None else await key_usage(run)
            emitter.emit(
                FlowFinished(
                    flow_id=run.flow_id,
                    final_output=final_output,
                    output_data=output_data,
                    status=status.value,
                    success=status is FlowStatus.COMPLETED,
                    error=error,
                    usage=None if usage is None else usage.to_dict(),
                    key_usage=keys,
                )
            )
    emitter.flush()
    run.lease.stop()
    abort = control.abort
    # A store outage leaves the flow running for recover(); unstorable output
    # would fail the same way again, so that flow is recorded as failed. A run
    # that lost its lease writes nothing: another process has the flow.
    if run.committer.durable and (abort is None or isinstance(abort, UnstorableOutputError)):
        update = FlowUpdate(
            status=status,
            updated_at=time.time(),
            error=error,
            final_output=final_output if status.is_terminal else None,
            release_lease=True,
        )
        try:
            await run.committer.update(update)
        except LeaseLostError as exc:
            error, status = str(exc), FlowStatus.FAILED
        except Exception as exc:
            error = (
                f"the store ({run.committer.store_name}) failed while recording the end of "
                f"flow {run.flow_id}: {error_text(exc)}"
            )
            status = FlowStatus.FAILED
    elif isinstance(abort, StoreUnavailableError) and run.committer.durable:
        await release_after_outage(run)
    results = NodeResults(run.state.latest)
    return FlowResult(
        flow_id=run.flow_id,
        success=status is FlowStatus.COMPLETED,
        final_output=final_output,
        output_data=output_data,
        error=error,
        node_results=results,
        captures=Captures(run.graph, results),
        duration_seconds=time.monotonic() - run.started,
        status=status,
        waiting=waiting_nodes(run),
        wakes_at=wakes_at,
    )


async def release_after_outage(run: FlowRun) -> None:
    """The store failed mid-run: the flow stays running for recover(), and its lease
    is given up now if the store takes a write again (on a full disk a small update
    often still fits), so recover() need not wait for it to run out."""
    try:
        await run.lease.release()
    except Exception as exc:
        logger.warning(
            "flow %s: the lease could not be released after the store failed (%s); "
            "it runs out in %.0f s",
            run.flow_id,
            error_text(exc),
            run.lease.ttl,
        )


def first_timer(run: FlowRun) -> float | None:
    """When the paused flow's first timer is due: a parked timer or a wait's deadline."""
    state = run.state
    times = [a.not_before for a in state.waiting.values() if a.not_before]
    if state.timers:
        times.append(state.timers[0][0])
    return min(times) if times else None


def describe_failure(run: FlowRun) -> str | None:
    """The first final failure, naming its node; else a restored failed flow's own
    error (a budget, a visit limit: no record says it); else None."""
    if not run.state.failures:
        return run.state.stored_error
    cnode, message = run.state.failures[0]
    return message if cnode.describe() in message else f"node {cnode.describe()}: {message}"


def waiting_nodes(run: FlowRun) -> list[WaitingNode]:
    return [
        WaitingNode(
            node_id=act.node_id,
            node_name=act.cnode.name,
            prompt=act.prompt,
            options=list(act.options or ()),
            visit=act.visit,
        )
        for act in run.state.waiting.values()
    ]
