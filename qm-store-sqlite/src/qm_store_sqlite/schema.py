"""The database schema, its version record and its migrations.

The version lives in ``qm_meta`` under ``schema_version``. ``MIGRATIONS[i]``
takes a file from version ``i`` to ``i + 1``; version 0 is a file without our
tables (new, empty, or another application's SQLite file, whose tables are left
alone: every table of ours starts with ``qm_``). A file whose version is newer
than `SCHEMA_VERSION` is refused before anything is written to it.

Layout, for one flow (``flow_id`` is the 16-byte UUID):

- ``qm_flows``: one row per flow; its graph is a ``graph_hash`` into
  ``qm_graphs``, which stores each distinct graph once.
- ``qm_records``: every activation record, numbered in commit order (``seq``).
- ``qm_memory``: flow memory; ``qm_messages``: histories saved explicitly (0.1.5's
  ``save_messages``), which stand until a record of the node is committed after
  them (``after_seq``).
- ``qm_pending``, ``qm_deliveries``, ``qm_loop_exits``: the queue and the join
  and loop state a recovering process needs; dropped when the flow ends.
- ``qm_agent_memory``: per-agent persistent memory (not tied to a flow).
- ``qm_events``: the flow's event log (every event but tokens), by sequence number.
- ``qm_changes``: the frontier change of each of the flow's last 256 commits that
  keep theirs, by the flow's ``version`` (`ReadsChanges`); dropped when it ends.
- ``qm_slots``: concurrency slots per limit key, held until ``expires_at``,
  ``qm_requests``: the starts of each limit key in its window, and
  ``qm_waiters``: the activations waiting for a key, until ``expires_at`` (those
  in the line for its slots with their ``ticket``, first come first served),
  ``qm_tokens``: the LLM tokens of each limit key in its window, and
  ``qm_key_usage``: the node runs, tokens and cost of each budget key across flows
  (not tied to a flow; see `qm_store_sqlite.slots`).

``qm_flows`` also holds the flow's ``version`` (commits so far) and the lease of
the process driving it (``lease_owner``, ``lease_epoch``, ``lease_expires``); a
commit checks them in its own write transaction.

Every per-flow table leads with ``flow_id`` in its primary key or index, so
reading one flow never visits another's rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

SCHEMA_VERSION = 4

_V1 = """
CREATE TABLE IF NOT EXISTS qm_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE qm_graphs (
    hash TEXT PRIMARY KEY,
    spec TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE qm_flows (
    flow_id        BLOB PRIMARY KEY,
    graph_hash     TEXT NOT NULL,
    input          TEXT NOT NULL,
    status         TEXT NOT NULL,
    created_at     REAL NOT NULL,
    updated_at     REAL NOT NULL,
    error          TEXT,
    final_output   TEXT,
    event_seq      INTEGER NOT NULL,
    parent_flow_id BLOB
) WITHOUT ROWID;
CREATE INDEX qm_flows_by_updated ON qm_flows (updated_at);
CREATE INDEX qm_flows_by_status ON qm_flows (status, updated_at);
CREATE INDEX qm_flows_by_graph ON qm_flows (graph_hash);

CREATE TABLE qm_records (
    flow_id    BLOB NOT NULL,
    seq        INTEGER NOT NULL,
    node_id    BLOB NOT NULL,
    visit      INTEGER NOT NULL,
    attempt    INTEGER NOT NULL,
    status     TEXT NOT NULL,
    result     TEXT,
    error      TEXT,
    started    REAL,
    finished   REAL,
    user_input TEXT,
    inputs     TEXT NOT NULL,
    parents    TEXT NOT NULL,
    messages   TEXT,
    out_role   TEXT,
    data       TEXT,
    PRIMARY KEY (flow_id, seq)
) WITHOUT ROWID;

CREATE TABLE qm_memory (
    flow_id BLOB NOT NULL,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (flow_id, key)
) WITHOUT ROWID;

CREATE TABLE qm_messages (
    flow_id   BLOB NOT NULL,
    node_id   BLOB NOT NULL,
    after_seq INTEGER NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (flow_id, node_id)
) WITHOUT ROWID;

CREATE TABLE qm_pending (
    flow_id    BLOB NOT NULL,
    node_id    BLOB NOT NULL,
    visit      INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    attempt    INTEGER NOT NULL,
    inputs     TEXT NOT NULL,
    not_before REAL NOT NULL,
    waiting    INTEGER NOT NULL,
    prompt     TEXT NOT NULL,
    options    TEXT,
    user_input TEXT,
    PRIMARY KEY (flow_id, node_id, visit)
) WITHOUT ROWID;

CREATE TABLE qm_deliveries (
    flow_id      BLOB NOT NULL,
    target       BLOB NOT NULL,
    slot         INTEGER NOT NULL,
    edge         BLOB NOT NULL,
    source       BLOB,
    source_visit INTEGER NOT NULL,
    PRIMARY KEY (flow_id, target, slot, edge)
) WITHOUT ROWID;

CREATE TABLE qm_loop_exits (
    flow_id BLOB NOT NULL,
    header  BLOB NOT NULL,
    edge    BLOB NOT NULL,
    PRIMARY KEY (flow_id, header, edge)
) WITHOUT ROWID;

CREATE TABLE qm_agent_memory (
    agent_id   BLOB NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    metadata   TEXT,
    PRIMARY KEY (agent_id, key)
) WITHOUT ROWID;
"""


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _create_v1(db: sqlite3.Connection) -> None:
    for statement in _statements(_V1):
        db.execute(statement)


# Version 2: fencing (a commit counter and the driver's lease on each flow) and
# the durable event log.
_V2 = """
ALTER TABLE qm_flows ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE qm_flows ADD COLUMN lease_owner TEXT;
ALTER TABLE qm_flows ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE qm_flows ADD COLUMN lease_expires REAL NOT NULL DEFAULT 0;

CREATE TABLE qm_events (
    flow_id BLOB NOT NULL,
    seq     INTEGER NOT NULL,
    body    TEXT NOT NULL,
    PRIMARY KEY (flow_id, seq)
) WITHOUT ROWID;
"""


def _create_v2(db: sqlite3.Connection) -> None:
    for statement in _statements(_V2):
        db.execute(statement)


# Version 3: limits per key (`HoldsSlots`, `LimitsRate`, `LimitsTokens`, `CountsWaiters`)
# and schedules
# (`KeepsSchedules`: the schedule as JSON, its next tick in a column of its own for
# the compare-and-set that claims a tick).
_V3 = """
CREATE TABLE qm_slots (
    key        TEXT NOT NULL,
    holder     TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (key, holder)
) WITHOUT ROWID;

CREATE TABLE qm_requests (
    key TEXT NOT NULL,
    at  REAL NOT NULL
);
CREATE INDEX qm_requests_by_key ON qm_requests (key, at);

CREATE TABLE qm_tokens (
    key    TEXT NOT NULL,
    at     REAL NOT NULL,
    tokens INTEGER NOT NULL
);
CREATE INDEX qm_tokens_by_key ON qm_tokens (key, at);

CREATE TABLE qm_key_usage (
    key       TEXT PRIMARY KEY,
    node_runs INTEGER NOT NULL,
    tokens    INTEGER NOT NULL,
    cost      REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE qm_waiters (
    key        TEXT NOT NULL,
    waiter     TEXT NOT NULL,
    expires_at REAL NOT NULL,
    ticket     INTEGER,
    PRIMARY KEY (key, waiter)
) WITHOUT ROWID;

CREATE TABLE qm_schedules (
    name      TEXT PRIMARY KEY,
    next_tick REAL NOT NULL,
    body      TEXT NOT NULL
) WITHOUT ROWID;
"""


def _create_v3(db: sqlite3.Connection) -> None:
    for statement in _statements(_V3):
        db.execute(statement)


# Version 4: the frontier change of the latest commits of a flow that keep theirs
# (`ReadsChanges`; `quartermaster_engine.stores.changes`), by the flow's version.
_V4 = """
CREATE TABLE qm_changes (
    flow_id BLOB NOT NULL,
    version INTEGER NOT NULL,
    body    TEXT NOT NULL,
    PRIMARY KEY (flow_id, version)
) WITHOUT ROWID;
"""


def _create_v4(db: sqlite3.Connection) -> None:
    for statement in _statements(_V4):
        db.execute(statement)


#: ``MIGRATIONS[i]`` brings a file at version ``i`` to version ``i + 1``.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _create_v1,
    _create_v2,
    _create_v3,
    _create_v4,
)

assert len(MIGRATIONS) == SCHEMA_VERSION

#: Every table of a current file; the per-flow ones are listed in `FLOW_TABLES`.
TABLES = (
    "qm_meta",
    "qm_graphs",
    "qm_flows",
    "qm_records",
    "qm_memory",
    "qm_messages",
    "qm_pending",
    "qm_deliveries",
    "qm_loop_exits",
    "qm_agent_memory",
    "qm_events",
    "qm_slots",
    "qm_requests",
    "qm_waiters",
    "qm_tokens",
    "qm_key_usage",
    "qm_schedules",
    "qm_changes",
)
FLOW_TABLES = (
    "qm_records",
    "qm_memory",
    "qm_messages",
    "qm_pending",
    "qm_deliveries",
    "qm_loop_exits",
    "qm_events",
    "qm_changes",
)


class SchemaDamage(Exception):
    """The file's tables of ours are not those of any schema version."""


#: The tables version 3 added.
_LIMITS_AND_SCHEDULES = frozenset(
    {"qm_slots", "qm_requests", "qm_waiters", "qm_tokens", "qm_key_usage", "qm_schedules"}
)

#: The tables each schema version has (index: the version).
TABLES_OF: tuple[frozenset[str], ...] = (
    frozenset(),
    frozenset(TABLES) - {"qm_events", "qm_changes", *_LIMITS_AND_SCHEDULES},
    frozenset(TABLES) - {"qm_changes", *_LIMITS_AND_SCHEDULES},
    frozenset(TABLES) - {"qm_changes"},
    frozenset(TABLES),
)
assert len(TABLES_OF) == SCHEMA_VERSION + 1


def read_version(db: sqlite3.Connection) -> int:
    """The file's schema version; 0 when it has none of our tables.

    Raises `SchemaDamage` when our tables do not make a schema: a version that is no
    positive whole number ('abc', 0, -1), no version while tables of ours exist, or
    tables of the version missing. Reads only.
    """
    ours = {
        row[0]
        for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'qm\\_%' ESCAPE '\\'"
        )
    }
    others = sorted(ours - {"qm_meta"})
    if "qm_meta" not in ours:
        if others:
            raise SchemaDamage(f"table qm_meta is missing, but {', '.join(others)} exist")
        return 0
    row = db.execute("SELECT value FROM qm_meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        if others:
            raise SchemaDamage(f"qm_meta has no schema_version, but {', '.join(others)} exist")
        return 0
    text = str(row[0])
    if not text.isdigit() or int(text) < 1:
        raise SchemaDamage(f"schema_version in qm_meta is {row[0]!r}, not a version (1 or more)")
    version = int(text)
    if version < len(TABLES_OF):
        missing = sorted(TABLES_OF[version] - ours)
        if missing:
            raise SchemaDamage(f"schema version {version} has tables {', '.join(missing)} missing")
    return version


def migrate(db: sqlite3.Connection, version: int) -> None:
    """Bring the file from ``version`` to `SCHEMA_VERSION` (inside the caller's
    write transaction) and record the new version."""
    for step in MIGRATIONS[version:]:
        step(db)
    db.execute(
        "INSERT INTO qm_meta (key, value) VALUES ('schema_version', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(SCHEMA_VERSION),),
    )
