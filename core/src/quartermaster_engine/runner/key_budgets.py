"""Budgets per key across flows: ``[budgets."tenant:acme"] max_tokens = N``.

Every activation declaring a key (its node's metadata ``limit_keys``, its
executor's `nodes.DeclaresLimitKeys`: the same keys as limits) whose key has a
budget (its own table, else the first ``*`` pattern matching it) adds its
record's usage (a node run, its LLM tokens, their cost from ``[budgets.prices]``)
to the key's totals with its commit (`usage_counts`: a refused duplicate adds
nothing), in the store when it `KeepsKeyUsage` (SQLite, Redis, PostgreSQL: every
process sharing it; the store's fenced commit adds it), else in this process
(`LocalKeyUsage`).

Before such an activation starts, `budget_gate` asks `reached`: one store read for
all its budgeted keys. Nodes without a budgeted key cost one dictionary lookup, and
engines without key budgets nothing (`ExecutorCaller.key_budgets` is None).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from quartermaster_engine.budgets import BudgetsConfig, Exceeded, KeyBudget, Usage
from quartermaster_engine.context.node_execution import NodeExecution
from quartermaster_engine.nodes import NodeExecutor
from quartermaster_engine.runner.compiled import CNode, CompiledGraph
from quartermaster_engine.runner.key_limits import declared_keys
from quartermaster_engine.stores.adapter import _done
from quartermaster_engine.stores.base import KeepsKeyUsage
from quartermaster_engine.stores.records import UsageCount
from quartermaster_engine.types import GraphSpec

#: A budgeted key of an activation and its budget.
BudgetedKey = tuple[str, KeyBudget]


class LocalKeyUsage:
    """`KeepsKeyUsage` within this process: for an engine whose store keeps none."""

    def __init__(self) -> None:
        self._totals: dict[str, tuple[int, int, float]] = {}
        self._lock = threading.Lock()

    def add_key_usage(self, key: str, node_runs: int, tokens: int, cost: float) -> None:
        with self._lock:
            runs, toks, spent = self._totals.get(key, (0, 0, 0.0))
            self._totals[key] = (runs + node_runs, toks + tokens, spent + cost)

    def keys_usage(self, keys: Sequence[str]) -> list[tuple[int, int, float]]:
        with self._lock:
            return [self._totals.get(key, (0, 0, 0.0)) for key in keys]

    def key_usages(self) -> dict[str, tuple[int, int, float]]:
        with self._lock:
            return dict(self._totals)


class KeyBudgets:
    """An engine's budgets per key and where their usage is kept."""

    def __init__(self, config: BudgetsConfig, store: Any) -> None:
        self.config = config
        #: Whether the usage is shared by every process using the store.
        self.shared = isinstance(store, KeepsKeyUsage)
        self.usage: Any = store if self.shared else LocalKeyUsage()
        self._of_node: dict[CNode, tuple[BudgetedKey, ...]] = {}

    @classmethod
    def of(cls, config: BudgetsConfig | None, store: Any) -> KeyBudgets | None:
        """The engine's key budgets; None without any (nothing is counted then)."""
        return cls(config, store) if config is not None and config.keys else None

    def keys_of(
        self, cnode: CNode, executor: NodeExecutor | None, graph: GraphSpec
    ) -> tuple[BudgetedKey, ...]:
        """The budgeted keys of ``cnode``'s activations (worked out once per node)."""
        known = self._of_node.get(cnode)
        if known is not None:
            return known
        found: list[BudgetedKey] = []
        for key in declared_keys(cnode, executor, graph):
            budget = self.config.budget_of(key)
            if budget is not None:
                found.append((key, budget))
        if len(self._of_node) > 10_000:
            self._of_node.clear()
        self._of_node[cnode] = result = tuple(found)
        return result

    async def reached(self, keys: tuple[BudgetedKey, ...], approvals: int) -> Exceeded | None:
        """The first budget of ``keys`` their usage has reached, or None."""
        totals = await _done(self.usage.keys_usage([key for key, _ in keys]))
        for (key, budget), (runs, tokens, cost) in zip(keys, totals, strict=True):
            used = Usage(node_runs=int(runs), output_tokens=int(tokens), cost=float(cost))
            over = budget.reached(key, used, approvals, self.config.currency)
            if over is not None:
                return over
        return None

    def counts(self, keys: tuple[BudgetedKey, ...], rec: NodeExecution) -> list[UsageCount]:
        """What ``rec`` adds to each of ``keys`` (none for a waiting or cancelled record,
        which is no run)."""
        used = Usage(self.config)
        used.add(rec)
        if not used.node_runs:
            return []
        return [UsageCount(key, used.node_runs, used.tokens, used.cost) for key, _ in keys]

    async def graph_usage(
        self,
        compiled: CompiledGraph,
        executor_for: Callable[[str], tuple[NodeExecutor, bool] | None],
    ) -> dict[str, dict[str, Any]]:
        """Each budgeted key of ``compiled``'s nodes (their executors found by type
        with ``executor_for``), in node order, with its totals across flows (one
        store read) and its budget: ``{key: {"node_runs", "tokens", "cost",
        "currency", "table", "max_node_runs", "max_tokens", "max_cost",
        "on_exceeded"}}``; empty when no node has a budgeted key."""
        found: dict[str, KeyBudget] = {}
        for cnode in compiled.nodes:
            found_executor = executor_for(cnode.type_name)
            executor = None if found_executor is None else found_executor[0]
            for key, budget in self.keys_of(cnode, executor, compiled.spec):
                found.setdefault(key, budget)
        if not found:
            return {}
        totals = await _done(self.usage.keys_usage(list(found)))
        config = self.config
        return {
            key: {
                "node_runs": int(runs),
                "tokens": int(tokens),
                "cost": round(float(cost), 9),
                "currency": config.currency,
                "table": config.table_of(key),
                "max_node_runs": budget.max_node_runs,
                "max_tokens": budget.max_tokens,
                "max_cost": budget.max_cost,
                "on_exceeded": budget.on_exceeded,
            }
            for (key, budget), (runs, tokens, cost) in zip(found.items(), totals, strict=True)
        }

    async def totals(self) -> dict[str, tuple[int, int, float]]:
        """``{key: (node_runs, tokens, cost)}`` of every key with usage."""
        found: dict[str, Any] = await _done(self.usage.key_usages())
        return {k: (int(r), int(t), float(c)) for k, (r, t, c) in found.items()}
