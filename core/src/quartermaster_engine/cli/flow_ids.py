"""Flow ids as the CLI takes them: the full id or any unique prefix of it, as git
takes commit ids (``qm resume 42278a94``)."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import click

from quartermaster_engine._sync import run_sync
from quartermaster_engine.cli.common import fail
from quartermaster_engine.runner.shared_store import is_shared
from quartermaster_engine.stores.adapter import StoreAdapter
from quartermaster_engine.stores.records import FlowRecord

#: The ``FLOW_ID`` argument of every command that names a stored flow.
flow_id_argument = click.argument("flow_id", metavar="FLOW_ID")

_PREFIX = re.compile(r"[0-9a-f][0-9a-f-]*")


def resolve_flow_id(adapter: StoreAdapter, text: str, store_name: str) -> UUID:
    """The id of the one stored flow ``text`` names: a full id (stored or not: the
    command says when there is no such flow) or a prefix only one stored flow's id
    starts with. Ends the command naming the matches when the prefix is ambiguous."""
    wanted = text.strip().lower()
    try:
        return UUID(wanted)
    except ValueError:
        pass
    if not _PREFIX.fullmatch(wanted):
        fail(f"{text!r} is not a flow id (nor the start of one)")
    records: list[FlowRecord] = run_sync(adapter.list_flows())
    matches = sorted(str(r.flow_id) for r in records if str(r.flow_id).startswith(wanted))
    if not matches:
        note = memory_note(adapter.store)
        fail(
            f"no flow id in the store ({store_name}) starts with {wanted!r}"
            + (f"; {note}" if note else "")
        )
    if len(matches) > 1:
        fail(
            f"flow id prefix {wanted!r} is ambiguous: {len(matches)} flows match:\n"
            + "\n".join(f"  {flow_id}" for flow_id in matches)
        )
    return UUID(matches[0])


def memory_note(store: Any) -> str:
    """Why no other ``qm`` command can see the flows of ``store`` when it is not
    shared between processes (the default ``memory`` store); else ""."""
    if is_shared(store):
        return ""
    return (
        "the memory store keeps flows only inside the process that runs them: configure "
        'a durable store to keep them (e.g. [store] name = "sqlite")'
    )


def no_flow(flow_id: UUID, store: Any, where: str = "") -> str:
    """The message for a flow the store does not have."""
    note = memory_note(store)
    return f"no flow {flow_id}{where}" + (f"; {note}" if note else "")
