"""The extension hook qm-acme declares: other packages register widgets for it."""

from typing import Any

from quartermaster_engine.plugins import hookspec


@hookspec
def qm_register_acme_widgets(register: Any) -> None:
    """Register widgets: ``register(name, factory, config_model=..., description=...)``."""
