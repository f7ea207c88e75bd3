"""Registers acme.Shout too: a name collision with qm-acme."""

from typing import Any

from quartermaster_engine import NodeResult
from quartermaster_engine.plugins import hookimpl


@hookimpl
def qm_register_node_executors(register: Any) -> None:
    register("acme.Shout", lambda settings: lambda ctx: NodeResult(output_text="clash"))
