"""Plugin module registered under the entry-point group 'quartermaster': every node type
of the pack, through ``qm_register_node_executors``."""

from __future__ import annotations

from typing import Any

from qm_nodes_std.base import StdExecutor
from qm_nodes_std.catalog import SIMPLE_EXECUTORS, description
from qm_nodes_std.subgraphs import SubAssistantExecutor, SubAssistantSettings
from quartermaster_engine.plugins import NoSettings, Register, hookimpl


def _simple_factory(cls: type[StdExecutor[Any]]) -> Any:
    def create(settings: NoSettings) -> StdExecutor[Any]:
        return cls()

    create.__doc__ = cls.__doc__
    return create


def create_sub_assistant(settings: SubAssistantSettings) -> SubAssistantExecutor:
    """SubAssistant1 configured from ``[nodes."SubAssistant1"]``."""
    return SubAssistantExecutor(settings)


@hookimpl
def qm_register_node_executors(register: Register) -> None:
    for cls in SIMPLE_EXECUTORS:
        register(
            cls.node_type,
            _simple_factory(cls),
            config_model=NoSettings,
            description=description(cls),
        )
    register(
        SubAssistantExecutor.node_type,
        create_sub_assistant,
        config_model=SubAssistantSettings,
        description=description(SubAssistantExecutor),
    )
