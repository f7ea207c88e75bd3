"""Durable budgets per flow: node runs, LLM tokens, cost and wall time.

A flow's usage is read from its records: each activation's record is written
by its fenced commit exactly once (a retry's failed attempt has a record of its
own; a duplicate delivery's commit is refused), so usage counts every run once,
on every store, without a counter of its own. Tokens are the ``usage``
(``input_tokens`` / ``output_tokens``) a node reports in its output data, as the
LLM pack's nodes do; cost is tokens times the price of the record's ``model``
in ``[budgets.prices]``. ``FlowState`` keeps the running totals of the records
it applies or reads, so a check costs nothing more per activation.

Configuration (``[budgets]``; see docs/limits.md)::

    [budgets]
    max_node_runs = 200
    max_tokens = 100000
    max_cost = 2.5              # in `currency`, from `prices`
    currency = "USD"
    max_wall_seconds = "30m"    # seconds, or a duration like 90s, 15m, 2h
    on_exceeded = "fail"        # or "pause": wait for a person to approve more
    [budgets.prices."gpt-4o"]   # per million tokens; `*` patterns match models
    input = 2.5
    output = 10.0
    [budgets."tenant:acme"]     # per key, across flows: every flow whose activations
    max_tokens = 1000000        # declare the key counts (`runner.key_budgets`)
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus
from quartermaster_engine.durations import parse_duration
from quartermaster_engine.key_tables import check_key_tables

#: The flow-memory key counting approvals of a paused budget (each allows as much again).
APPROVALS_KEY = "qm.budget.approvals"
#: The answer that approves more budget.
APPROVE = "approve"
#: How the prompt of a budget wait starts (it marks the wait as the budget's, durably).
PROMPT_PREFIX = "[budget] "
#: Records of a node run (a waiting or cancelled record is not one).
_RUNS = frozenset({NodeStatus.FINISHED, NodeStatus.FAILED, NodeStatus.SKIPPED})


class Price(BaseModel):
    """A model's price per million tokens."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class KeyBudget(BaseModel):
    """``[budgets."<key>"]``: what the activations declaring a key (or a key a ``*``
    pattern matches) may use together, across flows and processes."""

    model_config = ConfigDict(extra="forbid")

    max_node_runs: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_cost: float | None = Field(default=None, gt=0)
    on_exceeded: Literal["fail", "pause"] = "fail"

    def reached(self, key: str, used: Usage, approvals: int, currency: str) -> Exceeded | None:
        """The first of ``key``'s budgets ``used`` has reached (each limit allowed
        ``1 + approvals`` times), or None."""
        times = 1 + max(0, approvals)
        checks: list[tuple[str, float | None, float, str]] = [
            ("max_node_runs", self.max_node_runs, used.node_runs, ""),
            ("max_tokens", self.max_tokens, used.tokens, ""),
            ("max_cost", self.max_cost, used.cost, f" {currency}"),
        ]
        for name, limit, value, unit in checks:
            if limit is not None and value >= limit * times:
                return Exceeded(name, limit * times, value, unit, key, self.on_exceeded)
        return None


class BudgetsConfig(BaseModel):
    """``[budgets]``: limits every flow of the engine obeys (each counts its own usage),
    and a `KeyBudget` table per key or key pattern (``[budgets."tenant:acme"]``)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, KeyBudget] = Field(init=False)

    max_node_runs: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    # Validated before max_cost, which needs them.
    currency: str = Field(default="USD", min_length=1)
    prices: dict[str, Price] = Field(default_factory=dict)
    max_cost: float | None = Field(default=None, gt=0)
    max_wall_seconds: float | None = Field(default=None, gt=0)
    on_exceeded: Literal["fail", "pause"] = "fail"

    @model_validator(mode="before")
    @classmethod
    def _tables(cls, data: Any) -> Any:
        return check_key_tables(data, set(cls.model_fields), "budgets")

    @field_validator("max_wall_seconds", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_duration(value).total_seconds()
        return value

    @field_validator("max_cost")
    @classmethod
    def _cost_needs_prices(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and not info.data.get("prices"):
            raise ValueError('max_cost needs a price table ([budgets.prices."<model>"])')
        return value

    @model_validator(mode="after")
    def _key_cost_needs_prices(self) -> BudgetsConfig:
        for key, budget in self.keys.items():
            if budget.max_cost is not None and not self.prices:
                raise ValueError(f'{key}.max_cost needs a price table ([budgets.prices."<model>"])')
        return self

    @property
    def keys(self) -> dict[str, KeyBudget]:
        """The budgets per key or key pattern, in configuration order."""
        return dict(self.__pydantic_extra__ or {})

    def budget_of(self, key: str) -> KeyBudget | None:
        """``key``'s own budget, else that of the first pattern matching it, else None."""
        table = self.table_of(key)
        return None if table is None else (self.__pydantic_extra__ or {})[table]

    def table_of(self, key: str) -> str | None:
        """The table of ``key``'s budget: its own, else the first pattern matching it."""
        keys = self.__pydantic_extra__ or {}
        if key in keys:
            return key
        return next((p for p in keys if fnmatch.fnmatchcase(key, p)), None)

    @property
    def active(self) -> bool:
        """Whether any budget of a flow is set (else flows count nothing of their own)."""
        return any(
            v is not None
            for v in (self.max_node_runs, self.max_tokens, self.max_cost, self.max_wall_seconds)
        )

    def price_of(self, model: str) -> Price | None:
        """The price of ``model``: its own entry, else the first pattern matching it."""
        price = self.prices.get(model)
        if price is not None:
            return price
        for pattern, candidate in self.prices.items():
            if fnmatch.fnmatchcase(model, pattern):
                return candidate
        return None

    def reached(self, usage: Usage, approvals: int, now: float) -> Exceeded | None:
        """The first budget ``usage`` has reached, each limit allowed ``1 + approvals``
        times; None while every budget has room."""
        times = 1 + max(0, approvals)
        checks: list[tuple[str, float | None, float, str]] = [
            ("max_node_runs", self.max_node_runs, usage.node_runs, ""),
            ("max_tokens", self.max_tokens, usage.tokens, ""),
            ("max_cost", self.max_cost, usage.cost, f" {self.currency}"),
            ("max_wall_seconds", self.max_wall_seconds, now - usage.since, " s"),
        ]
        for name, limit, used, unit in checks:
            if limit is not None and used >= limit * times:
                return Exceeded(name, limit * times, used, unit)
        return None


@dataclass(frozen=True, slots=True)
class Exceeded:
    """A budget reached: its name, its limit (with approvals) and the usage."""

    budget: str
    limit: float
    usage: float
    unit: str = ""
    #: The key whose budget it is (None: the flow's own), and that budget's policy.
    key: str | None = None
    on_exceeded: str | None = None

    def describe(self) -> str:
        return f"limit {_num(self.limit)}{self.unit}, usage {_num(self.usage)}{self.unit}"

    def owner(self, flow: str) -> str:
        """Whose budget it is: ``flow`` (e.g. ``flow <id>``), or ``key <key>``."""
        return flow if self.key is None else f"key {self.key}"


class BudgetExceededError(RuntimeError):
    """A flow reached one of its budgets (``[budgets]`` with ``on_exceeded = "fail"``).
    A failed flow's error is this error's text, prefixed by its name."""

    def __init__(self, flow_id: Any, exceeded: Exceeded, before: str) -> None:
        self.budget = exceeded.budget
        self.limit = exceeded.limit
        self.usage = exceeded.usage
        self.key = exceeded.key
        where = f"before node {before}"
        if exceeded.key is not None:
            where = f"flow {flow_id}, {where}"
        super().__init__(
            f"budget {exceeded.budget} of {exceeded.owner(f'flow {flow_id}')} is used up: "
            f"{exceeded.describe()} ({where})"
        )


@dataclass(slots=True)
class Usage:
    """A flow's usage so far, counted from its records."""

    config: BudgetsConfig | None = None
    node_runs: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    #: When the flow was created (wall time is counted from it).
    since: float = field(default_factory=time.time)
    #: The runs counted, by (node, visit, attempt): a process that reads records it
    #: applied itself before (a stepper catching up) counts each once.
    counted: set[tuple[Any, int, int]] = field(default_factory=set)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, rec: NodeExecution) -> None:
        """Count one committed record."""
        if rec.status not in _RUNS:
            return
        key = (rec.node_id, rec.visit, rec.attempt)
        if key in self.counted:
            return
        self.counted.add(key)
        self.node_runs += 1
        inp, out = tokens_of(rec)
        if not inp + out:
            return
        self.input_tokens += inp
        self.output_tokens += out
        model = _llm_field(rec, "model")
        if self.config is not None and isinstance(model, str):
            price = self.config.price_of(model)
            if price is not None:
                self.cost += (inp * price.input + out * price.output) / 1_000_000

    def reset(self) -> None:
        self.node_runs = self.input_tokens = self.output_tokens = 0
        self.cost = 0.0
        self.counted.clear()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "node_runs": self.node_runs,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "tokens": self.tokens,
            "cost": round(self.cost, 9),
            "currency": None if self.config is None else self.config.currency,
        }
        return data


def tokens_of(rec: NodeExecution) -> tuple[int, int]:
    """The record's LLM tokens, input and output: ``output_data["usage"]``, else
    ``output_data["llm"]["usage"]`` (where the LLM pack's nodes write it); 0 without."""
    usage = _llm_field(rec, "usage")
    if not isinstance(usage, dict):
        return 0, 0
    return _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))


def _llm_field(rec: NodeExecution, name: str) -> Any:
    """``output_data[name]``, else ``output_data["llm"][name]``, else None."""
    data = rec._data  # no dict is made for records without output data
    if not data:
        return None
    value = data.get(name)
    if value is None:
        llm = data.get("llm")
        if isinstance(llm, dict):
            value = llm.get(name)
    return value


def flow_usage(records: list[NodeExecution], config: BudgetsConfig | None) -> Usage:
    """The usage of a stored flow from all its records (``qm flows show``, the server)."""
    usage = Usage(config)
    for rec in records:
        usage.add(rec)
    return usage


def new_usage(config: BudgetsConfig | None) -> Usage | None:
    """The running usage a flow keeps when budgets are set, the flow's or a key's
    (`FlowFinished.usage`); None (nothing counted) else."""
    return Usage(config) if config is not None and (config.active or config.keys) else None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"
