"""``[budgets]``: validated like every section, errors naming the field and its source."""

from __future__ import annotations

from pathlib import Path

import pytest

from quartermaster_engine import Engine
from quartermaster_engine.config import ConfigError, EngineConfig
from quartermaster_engine.runner.key_limits import Rule


def test_budgets_read_from_a_file_with_durations_and_prices(tmp_path: Path) -> None:
    path = tmp_path / "qm.toml"
    path.write_text(
        "[budgets]\nmax_tokens = 5000\nmax_cost = 1.5\ncurrency = 'EUR'\n"
        "max_wall_seconds = '15m'\non_exceeded = 'pause'\n"
        "[budgets.prices.'gpt-4o']\ninput = 2.5\noutput = 10\n"
        "[budgets.prices.'claude-*']\ninput = 3\noutput = 15\n"
    )
    budgets = EngineConfig.load(path, environ={}).budgets
    assert (budgets.max_tokens, budgets.max_cost, budgets.currency) == (5000, 1.5, "EUR")
    assert (budgets.max_wall_seconds, budgets.on_exceeded) == (900.0, "pause")
    assert budgets.price_of("claude-3-haiku") == budgets.prices["claude-*"]
    assert budgets.price_of("gpt-4o-mini") is None
    engine = Engine.from_config(path)
    try:
        assert engine.budgets is not None
        assert engine.budgets.max_tokens == 5000
    finally:
        engine.close()


def test_no_budget_set_counts_nothing() -> None:
    engine = Engine.from_config({}, store="memory")
    try:
        assert engine.budgets is None
    finally:
        engine.close()


@pytest.mark.parametrize(
    ("section", "environ", "message"),
    [
        (
            "max_cost = 1\n",
            {},
            "invalid configuration: budgets.max_cost: Value error, max_cost needs a price "
            'table ([budgets.prices."<model>"]) (from qm.toml)',
        ),
        (
            "max_wall_seconds = 'soon'\non_exceeded = 'ask'\n",
            {},
            "invalid configuration: budgets.max_wall_seconds: Value error, 'soon' is not a "
            "duration like 90s, 15m, 12h, 7d, 2w or 1d12h (from qm.toml); "
            "budgets.on_exceeded: Input should be 'fail' or 'pause' (from qm.toml)",
        ),
        (
            "",
            {"QM_BUDGETS__MAX_TOKENS": "many"},
            "invalid configuration: budgets.max_tokens: Input should be a valid integer, "
            "unable to parse string as an integer (from environment (QM_BUDGETS__MAX_TOKENS))",
        ),
        (
            "max_token = 5000\n",
            {},
            "invalid configuration: budgets: Value error, unknown budgets setting "
            "'max_token' (settings: currency, max_cost, max_node_runs, max_tokens, "
            "max_wall_seconds, on_exceeded, prices); to set a key's budgets, write a table: "
            '[budgets."max_token"] (from qm.toml)',
        ),
        (
            "max_node_runs = 0\n[budgets.prices.m]\ninput = 1\n",
            {},
            "invalid configuration: budgets.max_node_runs: Input should be greater than or "
            "equal to 1 (from qm.toml); budgets.prices.m.output: Field required (from qm.toml)",
        ),
    ],
)
def test_bad_budgets_name_the_field_and_its_source(
    tmp_path: Path, section: str, environ: dict[str, str], message: str
) -> None:
    path = tmp_path / "qm.toml"
    path.write_text("[budgets]\n" + section)
    with pytest.raises(ConfigError) as caught:
        EngineConfig.load(path, environ=environ)
    assert str(caught.value) == message


def test_a_misspelled_limits_setting_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "qm.toml"
    path.write_text("[limits]\nmax_visit = 5\n")
    with pytest.raises(ConfigError) as caught:
        EngineConfig.load(path, environ={})
    assert str(caught.value) == (
        "invalid configuration: limits: Value error, unknown limits setting 'max_visit' "
        "(settings: max_visits); to set a key's limits, write a table: "
        '[limits."max_visit"] (from qm.toml)'
    )


def test_wall_time_and_approvals_with_a_given_clock() -> None:
    from quartermaster_engine.budgets import BudgetsConfig, Exceeded, Usage

    config = BudgetsConfig(max_wall_seconds=60, max_node_runs=2)
    usage = Usage(config, since=1000.0)
    assert config.reached(usage, 0, now=1059.5) is None
    over = config.reached(usage, 0, now=1061.25)
    assert over == Exceeded("max_wall_seconds", 60, 61.25, " s")
    assert over.describe() == "limit 60 s, usage 61.25 s"
    # One approval allows as much again: 120 s, and 4 node runs.
    assert config.reached(usage, 1, now=1119.0) is None
    usage.node_runs = 4
    assert config.reached(usage, 1, now=1100.0) == Exceeded("max_node_runs", 4, 4)


def test_limits_per_key_from_a_file_and_their_errors(tmp_path: Path) -> None:
    path = tmp_path / "qm.toml"
    path.write_text(
        "[limits]\nmax_visits = 7\n"
        "[limits.'llm:openai:gpt-4o']\nmax_in_flight = 8\n"
        "[limits.'llm:openai:*']\nmax_in_flight = 3\nmax_requests = 120\nper = '1m'\n"
        "[limits.'tenant:*']\nmax_tokens = 90000\nper = '1h'\n"
    )
    engine = Engine.from_config(path)
    try:
        assert engine.max_visits == 7
        assert engine.key_limits is not None
        assert engine.key_limits.limits == {
            "llm:openai:gpt-4o": Rule(8),
            "llm:openai:*": Rule(3, 120, 60.0),
            "tenant:*": Rule(None, None, 3600.0, 90000),
        }
        assert engine.key_limits.counts_tokens
    finally:
        engine.close()
    path.write_text(
        "[limits.'tenant:*']\nmax_in_flight = 0\n[limits.'llm:x']\nmax = 2\n"
        "[limits.'llm:y']\nper = '1m'\n"
    )
    with pytest.raises(ConfigError) as caught:
        EngineConfig.load(path, environ={})
    assert str(caught.value) == (
        "invalid configuration: limits.tenant:*.max_in_flight: Input should be greater than "
        "or equal to 1 (from qm.toml); limits.llm:x.max: Extra inputs are not permitted "
        "(from qm.toml); limits.llm:y: Value error, a key's table needs max_in_flight, "
        "max_requests or max_tokens (from qm.toml)"
    )
