"""Drivers: the loops that take ready activations and run them.

The inline driver runs one activation at a time in queue order (the sync
dispatcher: deterministic). The concurrent driver runs them as asyncio tasks,
at most ``max_concurrency`` at once; a task keeps taking ready activations, so a
chain runs in one task instead of a task and a wake-up per node, and a lone ready
activation with nothing else running or timed runs in the driver's own task (a flow
that awaits one node, W8's case, keeps no task and wake-up of its own). Both sleep
until the next timer (a retry delay, a Sleep1) when nothing is ready, on the
engine's clock, unless the run parks (`runner.timers`), and return when nothing
can run or the run halted.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from quartermaster_engine.runner.control import Wake
from quartermaster_engine.runner.timers import parks_now
from quartermaster_engine.stores.records import Activation

if TYPE_CHECKING:
    from quartermaster_engine.runner.flow_run import FlowRun


async def drive_inline(run: FlowRun) -> None:
    ready = run.state.ready
    control = run.control
    while not control.stop_if_requested():
        if ready:
            await run.run_activation(ready.popleft())
            if run.yield_each_step:
                # Let a run_async consumer see events while the flow runs.
                await asyncio.sleep(0)
            continue
        if not run.state.timers or (run.parks and parks_now(run)):
            return
        await _sleep_until_timer(run)


async def _sleep_until_timer(run: FlowRun) -> None:
    await run.control.cancellable(run.clock.sleep_until(run.state.timers[0][0]))
    run.state.release_due_timers()


async def drive_concurrent(run: FlowRun, limit: int | None) -> None:
    control = run.control
    state = run.state
    wake = control.wake = Wake()
    ready = state.ready
    loop = asyncio.get_running_loop()
    while True:
        control.stop_if_requested()
        if run.running == 0 and len(ready) == 1 and not state.timers and not control.halted:
            # One activation and nothing to watch meanwhile: it runs in this task (a
            # flow awaiting one node keeps no task, wake-up or frames of its own).
            await _run_here(run, ready.popleft())
            continue
        while ready and not control.halted and (limit is None or run.running < limit):
            act = ready.popleft()
            run.running += 1
            task = loop.create_task(_run_task(run, act))
            run.tasks.add(task)
        if run.running == 0 and (control.halted or (not ready and not state.timers)):
            return
        if run.running == 0 and not ready and run.parks and parks_now(run):
            return
        if state.timers and not control.halted:
            await _wake_or_timer(run, wake, state.timers[0][0])
        else:
            await wake.wait()
        wake.clear()
        state.release_due_timers()


async def _wake_or_timer(run: FlowRun, wake: Wake, when: float) -> None:
    """Wait until a task ends (``wake``) or the clock reaches ``when``."""
    woken = asyncio.ensure_future(wake.wait())
    timer = asyncio.ensure_future(run.clock.sleep_until(when))
    try:
        await asyncio.wait((woken, timer), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (woken, timer):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def _run_here(run: FlowRun, act: Activation) -> None:
    """Run ``act`` in the driver's own task; failures halt the run as in `_run_task`."""
    control = run.control
    try:
        await run.run_activation(act)
    except asyncio.CancelledError:
        if not control.halted:
            raise
        task = asyncio.current_task()
        if task is not None:  # (the stop cancelled the driver: it goes on to finish)
            while task.cancelling():
                task.uncancel()
    except Exception as exc:
        control.fail_with(exc)


async def _run_task(run: FlowRun, act: Activation) -> None:
    """Run ``act``, then keep taking ready activations while there are any."""
    ready = run.state.ready
    control = run.control
    wake = control.wake
    try:
        await run.run_activation(act)
        while ready and not control.stop_if_requested():
            nxt = ready.popleft()
            if ready and wake is not None:
                wake.set()  # more are ready: the driver starts tasks for them
            await run.run_activation(nxt)
    except asyncio.CancelledError:
        if not control.halted:
            raise
    except Exception as exc:
        control.fail_with(exc)
    finally:
        run.running -= 1
        task = asyncio.current_task()
        if task is not None:
            run.tasks.discard(task)
            control.forget(task)
        if control.wake is not None:
            control.wake.set()
