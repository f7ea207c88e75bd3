"""Registers the node type acme.Shout, the store acme-memory, the dispatcher acme-sync,
the sink acme-count, the command ``qm acme-hello`` and the export
``qm_acme.old:Greeting``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel, ConfigDict

from qm_acme import hookspecs  # noqa: F401 - declares the extension hook
from quartermaster_engine import InMemoryStore, NodeResult, SyncDispatcher
from quartermaster_engine.plugins import hookimpl


@hookimpl
def qm_register_acme_widgets(register: Any) -> None:
    """ACME's own widget."""
    register("spring", lambda settings: "a spring")


class ShoutSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suffix: str = "!"
    times: int = 1


class Shout:
    """Upper-cases its input and appends the suffix."""

    def __init__(self, settings: ShoutSettings) -> None:
        self.settings = settings

    async def execute(self, context: Any) -> NodeResult:
        text = context.input_text.upper() + self.settings.suffix * self.settings.times
        return NodeResult(output_text=text)


class CountSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path


class CountSink:
    """Appends each event's type to a file."""

    def __init__(self, settings: CountSettings) -> None:
        self.path = settings.path

    def emit(self, event: Any) -> None:
        with self.path.open("a") as handle:
            handle.write(event.type + "\n")


@hookimpl
def qm_register_node_executors(register: Any) -> None:
    register("acme.Shout", Shout, config_model=ShoutSettings, description="Shouts its input.")


class StoreSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ledger: Path


class AcmeStore(InMemoryStore):
    """The in-memory store, writing the id of every flow it creates to a ledger file."""

    def __init__(self, settings: StoreSettings) -> None:
        super().__init__()
        self.ledger = settings.ledger

    def create_flow(self, record: Any) -> None:
        super().create_flow(record)
        with self.ledger.open("a") as handle:
            handle.write(f"{record.flow_id}\n")


@hookimpl
def qm_register_stores(register: Any) -> None:
    register("acme-memory", AcmeStore, config_model=StoreSettings)


@hookimpl
def qm_register_dispatchers(register: Any) -> None:
    register("acme-sync", lambda settings: SyncDispatcher(), description="Sync, by ACME.")


@hookimpl
def qm_register_event_sinks(register: Any) -> None:
    register("acme-count", CountSink, config_model=CountSettings)


@click.command("acme-hello")
@click.argument("name")
def hello(name: str) -> None:
    """Greets NAME, from ACME."""
    click.echo(f"hello {name}, from acme")


@hookimpl
def qm_register_commands(register: Any) -> None:
    register("acme-hello", lambda settings: hello)


@hookimpl
def qm_register_exports(register: Any) -> None:
    register("qm_acme.old:Greeting", lambda settings: "hello from acme")
