"""The SQLite store under 0.1.5's contract, served at 0.1.5's import path.

``from quartermaster_engine.stores.sqlite_store import SQLiteStore`` resolves to
this class through the plugin registry (this distribution registers it with
``qm_register_exports``; the core imports no plugin), so
``SQLiteStore(db_path="my_agent.db")`` keeps working with 0.1.5's contract: the
methods 0.1.5 documented are plain calls that return values.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from qm_store_sqlite.settings import DEFAULT_BUSY_TIMEOUT
from qm_store_sqlite.store import SQLiteStore as _SQLiteStore
from quartermaster_engine._sync import run_sync
from quartermaster_engine.context.node_execution import NodeExecution
from quartermaster_engine.types import Message


class SQLiteStore(_SQLiteStore):
    """qm-store-sqlite's `SQLiteStore` under 0.1.5's name and contract.

    ``db_path`` is 0.1.5's argument (relative paths are relative to the current
    folder; default ``quartermaster_engine.db``). 0.1.5's methods
    (`save_memory`, `get_memory`, `get_node_execution`, `get_messages`,
    `append_message`, `clear_flow`, ... and `close`) are synchronous and return
    their values, from plain code and from inside a running event loop (a
    notebook cell, a web handler): there the call runs on the engine's
    background loop and blocks the caller until SQLite answers, like any
    blocking database call. Async code that should not block its loop uses
    ``qm_store_sqlite.SQLiteStore``, whose methods are ``async def``.

    The engine uses the durable methods (`commit`, `load_flow`, ...), which stay
    ``async def``, so a runner on this store never blocks its event loop.
    """

    def __init__(
        self,
        db_path: str | Path = "quartermaster_engine.db",
        *,
        synchronous: str = "NORMAL",
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        retention: timedelta | str | float | None = None,
    ) -> None:
        super().__init__(
            db_path, synchronous=synchronous, busy_timeout=busy_timeout, retention=retention
        )

    # The overrides change ``async def`` into ``def``: that is 0.1.5's contract, and
    # the engine calls these methods through `StoreAdapter`, which accepts either.

    def save_node_execution(  # type: ignore[override]
        self, flow_id: UUID, node_id: UUID, execution: NodeExecution
    ) -> None:
        """Append a record of the node (its latest from now on)."""
        run_sync(super().save_node_execution(flow_id, node_id, execution))

    def get_node_execution(  # type: ignore[override]
        self, flow_id: UUID, node_id: UUID
    ) -> NodeExecution | None:
        """The node's latest record, or None."""
        return run_sync(super().get_node_execution(flow_id, node_id))

    def get_all_node_executions(  # type: ignore[override]
        self, flow_id: UUID
    ) -> dict[UUID, NodeExecution]:
        """``{node_id: latest record}`` for the flow."""
        return run_sync(super().get_all_node_executions(flow_id))

    def save_memory(self, flow_id: UUID, key: str, value: Any) -> None:  # type: ignore[override]
        """Set a flow-memory value (a JSON value)."""
        run_sync(super().save_memory(flow_id, key, value))

    def get_memory(self, flow_id: UUID, key: str) -> Any:
        """A flow-memory value, or None."""
        return run_sync(super().get_memory(flow_id, key))

    def get_all_memory(self, flow_id: UUID) -> dict[str, Any]:  # type: ignore[override]
        """The flow's memory as a new dict."""
        return run_sync(super().get_all_memory(flow_id))

    def delete_memory(self, flow_id: UUID, key: str) -> None:  # type: ignore[override]
        """Remove a flow-memory value (no error when absent)."""
        run_sync(super().delete_memory(flow_id, key))

    def save_messages(  # type: ignore[override]
        self, flow_id: UUID, node_id: UUID, messages: list[Message]
    ) -> None:
        """Replace the node's message history."""
        run_sync(super().save_messages(flow_id, node_id, messages))

    def get_messages(self, flow_id: UUID, node_id: UUID) -> list[Message]:  # type: ignore[override]
        """The node's history: saved explicitly, else the one its latest record ends."""
        return run_sync(super().get_messages(flow_id, node_id))

    def append_message(  # type: ignore[override]
        self, flow_id: UUID, node_id: UUID, message: Message
    ) -> None:
        """Append one message to the node's history."""
        run_sync(super().append_message(flow_id, node_id, message))

    def clear_flow(self, flow_id: UUID) -> None:  # type: ignore[override]
        """Remove everything stored for the flow."""
        run_sync(super().clear_flow(flow_id))

    def close(self) -> None:  # type: ignore[override]
        """Release the connections; safe to call twice. A later use reopens them."""
        run_sync(super().close())


__all__ = ["SQLiteStore"]
