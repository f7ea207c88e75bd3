"""Plugin module registered under the entry-point group 'quartermaster': ``qm serve``."""

from __future__ import annotations

from typing import Any

import click

from quartermaster_engine.plugins import Register, hookimpl


def _serve(settings: Any) -> click.Command:
    from qm_server.cli import serve_command

    return serve_command


@hookimpl
def qm_register_commands(register: Register) -> None:
    register("serve", _serve, description="serve the HTTP API and the web page")
