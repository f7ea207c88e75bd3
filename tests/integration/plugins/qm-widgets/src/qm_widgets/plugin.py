"""Registers the widget 'gear' through qm-acme's extension hook."""

from typing import Any

from quartermaster_engine.plugins import hookimpl


@hookimpl
def qm_register_acme_widgets(register: Any) -> None:
    register("gear", lambda settings: "a gear", description="A gear.")
