"""Counting an accepted record's usage for its keys, in its commit.

A record of a node with a key limiting tokens (`key_limits`, ``max_tokens``) adds
its LLM tokens to each such key's window; one with a budgeted key (`key_budgets`)
adds a node run, its tokens and their cost to each such key's totals. When the
store keeps them (`LimitsTokens`, `KeepsKeyUsage`), `stage` puts these counts on
the activation's `Commit` (``key_tokens``, ``key_usage``) and the store's fenced
commit applies them with the record, all or nothing: a refused duplicate counts
nothing, and no process can die between a record and its count. Otherwise (the
memory store) this process adds them to its own totals once the commit was
accepted (`add_local`), with nothing awaited in between.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quartermaster_engine.budgets import tokens_of
from quartermaster_engine.context.node_execution import NodeExecution
from quartermaster_engine.runner.compiled import CNode
from quartermaster_engine.stores.records import Commit, TokenCount, UsageCount

if TYPE_CHECKING:
    from quartermaster_engine.runner.flow_run import FlowRun


class LocalCounts:
    """Counts this process keeps itself, added once their commit was accepted."""

    __slots__ = ("tokens", "usage")

    def __init__(self, tokens: list[TokenCount], usage: list[UsageCount]) -> None:
        self.tokens = tokens
        self.usage = usage


def stage(run: FlowRun, cnode: CNode, rec: NodeExecution, commit: Commit) -> LocalCounts | None:
    """Put ``rec``'s counts that the store keeps on ``commit``; return those this
    process keeps (None when there are none). Only called when `counts_usage`."""
    caller = run.caller
    found = caller.executor(cnode)
    if found is None:
        return None
    local_tokens: list[TokenCount] = []
    local_usage: list[UsageCount] = []
    limits = caller.token_limits
    if limits is not None:
        inp, out = tokens_of(rec)
        if inp + out:
            now = limits.clock.now()
            tokens = [
                TokenCount(key, inp + out, now, rule.per)
                for key, rule in limits.keys_of(cnode, found[0], run.graph)
                if rule.max_tokens is not None
            ]
            if limits.tokens_shared:
                commit.key_tokens = tokens
            else:
                local_tokens = tokens
    budgets = caller.key_budgets
    if budgets is not None:
        keys = budgets.keys_of(cnode, found[0], run.graph)
        if keys:
            usage = budgets.counts(keys, rec)
            if budgets.shared:
                commit.key_usage = usage
            else:
                local_usage = usage
    if local_tokens or local_usage:
        return LocalCounts(local_tokens, local_usage)
    return None


def add_local(run: FlowRun, counts: LocalCounts) -> None:
    """Add ``counts`` (their commit was accepted) to this process's own totals."""
    caller = run.caller
    limits, budgets = caller.token_limits, caller.key_budgets
    if limits is not None:
        for t in counts.tokens:
            limits.tokens.add_tokens(t.key, t.tokens, t.at, t.per)
    if budgets is not None:
        for u in counts.usage:
            budgets.usage.add_key_usage(u.key, u.node_runs, u.tokens, u.cost)
