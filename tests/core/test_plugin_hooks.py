"""Every hook is documented with its exact signature and exercised by a test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from quartermaster_engine.plugins import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(hookspecs.HOOK_KINDS)


def test_every_hookspec_is_listed_in_hook_kinds() -> None:
    declared = sorted(
        name
        for name, fn in vars(hookspecs).items()
        if callable(fn) and hasattr(fn, "quartermaster_spec")
    )
    assert declared == HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_with_its_signature(hook: str) -> None:
    doc = (ROOT / "docs" / "plugin-hooks.md").read_text()
    params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert f"## `{hook}({params})`" in doc


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_exercised_by_a_test(hook: str) -> None:
    """A plugin implementing the hook is loaded by some test (not only this one)."""
    sources = [
        p
        for p in (ROOT / "tests").rglob("*.py")
        if p.name != Path(__file__).name and re.search(rf"\bdef {hook}\b", p.read_text())
    ]
    assert sources, f"no test plugin implements {hook}"
