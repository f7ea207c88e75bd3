"""The budget gate: before an activation runs, the flow's budgets must have room.

Only flows of an engine with budgets reach it (`ExecutorCaller.gated`): the
flow's own (`FlowState.usage` is None without), and those of the activation's
keys across flows (`key_budgets`: one store read for all its budgeted keys). A
reached budget, per ``[budgets] on_exceeded`` (a key's per its own table's):

- ``fail``: the flow fails with `BudgetExceededError`'s text; the activation
  never runs (it stays pending until the failure is recorded, which drops it);
- ``pause``: the activation is parked, waiting for a person, with a prompt
  naming the budget (`budgets.PROMPT_PREFIX`); answering it ``approve`` (a
  resume like any other) allows each budget as much again, counted in flow
  memory (`budgets.APPROVALS_KEY`) by the answer's fenced commit.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from quartermaster_engine.budgets import (
    APPROVALS_KEY,
    APPROVE,
    PROMPT_PREFIX,
    BudgetExceededError,
    BudgetsConfig,
    Exceeded,
)
from quartermaster_engine.events import UserInputRequired
from quartermaster_engine.runner import outcomes
from quartermaster_engine.runner.control import Phase
from quartermaster_engine.runner.errors import FlowStateError, error_text
from quartermaster_engine.stores.records import Activation, Commit

if TYPE_CHECKING:
    from quartermaster_engine.runner.flow_run import FlowRun


def approvals(run: FlowRun) -> int:
    value = run.state.memory.get(APPROVALS_KEY, 0)
    return value if isinstance(value, int) else 0


def reached(run: FlowRun) -> Exceeded | None:
    """The budget the flow has reached, or None (also when it has no budgets)."""
    usage = run.state.usage
    config = run.host.budgets
    if usage is None or config is None:
        return None
    return config.reached(usage, approvals(run), time.time())


async def key_reached(run: FlowRun, act: Activation) -> Exceeded | None:
    """The budget of one of ``act``'s keys their usage across flows has reached, or None
    (also when no key of ``act`` has a budget)."""
    budgets = run.caller.key_budgets
    if budgets is None:
        return None
    found = run.caller.executor(act.cnode)
    keys = budgets.keys_of(act.cnode, None if found is None else found[0], run.graph)
    if not keys:
        return None
    return await budgets.reached(keys, approvals(run))


async def blocked(run: FlowRun, act: Activation) -> Exceeded | None:
    """The budget, the flow's or a key's, that keeps ``act`` from running, or None."""
    over = reached(run)
    return over if over is not None else await key_reached(run, act)


async def admit(run: FlowRun, act: Activation) -> bool:
    """Whether ``act`` may run now; if not, the flow failed or ``act`` waits for approval."""
    over = await blocked(run, act)
    if over is None:
        return True
    config = run.host.budgets
    assert config is not None
    if (over.on_exceeded or config.on_exceeded) == "pause":
        await _park(run, act, over)
    else:
        _fail(run, act, over)
    return False


def _fail(run: FlowRun, act: Activation, over: Exceeded) -> None:
    cnode = act.cnode
    error = error_text(BudgetExceededError(run.flow_id, over, cnode.describe()))
    # Nothing to store now: the failure is the flow's own, recorded by finish().
    run.state.apply(Commit(), failure=(cnode, error))
    run.halt(Phase.FAILING)
    outcomes.flow_error(run, cnode, error, recoverable=False)


async def _park(run: FlowRun, act: Activation, over: Exceeded) -> None:
    cnode = act.cnode
    prompt = (
        f"{PROMPT_PREFIX}budget {over.budget} of {over.owner('this flow')} is used up "
        f"({over.describe()}); "
        f"answer {APPROVE!r} to allow as much again before node {cnode.describe()} runs"
    )
    # A new activation, not ``act`` changed in place: an in-memory store holds ``act``.
    parked = _copy(act, waiting=True, prompt=prompt, options=[APPROVE])
    handle = None
    emitter = run.emitter
    if emitter.listening:
        handle = emitter.stage(
            UserInputRequired(
                flow_id=run.flow_id,
                node_id=cnode.node_id,
                prompt=prompt,
                options=[APPROVE],
                node_name=cnode.name,
            )
        )
    commit = Commit(enqueue=[parked])  # the pending activation, now waiting
    try:
        if run.committer.durable:
            await run.committer.commit(commit)
    except BaseException:
        if handle is not None:
            emitter.drop(handle)
        raise
    run.state.apply(commit)
    if handle is not None:
        emitter.release(handle)


def is_budget_wait(act: Activation) -> bool:
    return act.prompt.startswith(PROMPT_PREFIX) and act.options == [APPROVE]


def approval(run: FlowRun, waiting: Activation, answer: str) -> Commit | None:
    """The commit answering a budget wait (None: ``waiting`` is a node's own wait).
    Every activation waiting for the budget runs again; the node gets no answer."""
    if not is_budget_wait(waiting):
        return None
    if answer != APPROVE:
        raise FlowStateError(
            f"flow {run.flow_id} waits for more budget: answer {APPROVE!r}, or stop the flow"
        )
    again: list[Activation] = []
    for act in [waiting, *(a for a in run.state.waiting.values() if a is not waiting)]:
        if not is_budget_wait(act):
            continue
        again.append(_copy(act))
    memory = {APPROVALS_KEY: approvals(run) + 1}
    return Commit(memory=memory, enqueue=again, answers=waiting.key)


def _copy(act: Activation, **changes: Any) -> Activation:
    """``act`` as a new activation (its node's own answer kept), with ``changes``."""
    new = Activation(
        act.node_id, act.visit, act.attempt, act.inputs, user_input=act.user_input, **changes
    )
    new.cnode = act.cnode
    new.sources = act.sources
    return new


__all__ = ["BudgetsConfig", "admit", "approval", "blocked", "is_budget_wait", "reached"]
