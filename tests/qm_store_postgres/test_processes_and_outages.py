"""Several processes on one database, a server that crashes mid-run, and every way
a server can refuse us: each fails clearly, naming the server, before anything runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from qm_pg_support import PASSWORD, PostgresServer, free_port, store_for, unique_schema
from qm_pg_worker import MANY_LENGTH

from qm_store_postgres import (
    SCHEMA_VERSION,
    PostgresSettings,
    PostgresStore,
    PostgresUnavailableError,
    SchemaVersionError,
    StoreOpenError,
)
from qm_store_postgres.schema import MIGRATIONS, meta_sql
from quartermaster_engine import FlowRunner
from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry
from quartermaster_engine.stores.graphs import GraphCache
from quartermaster_engine.stores.records import Activation, FlowStatus
from quartermaster_engine.testing import call, chain_graph
from quartermaster_engine.testing.crash import expected_output
from quartermaster_engine.testing.graphs import name_id

WORKER = Path(__file__).with_name("qm_pg_worker.py")
FLOWS_PER_PROCESS = 25


@pytest.mark.parametrize("processes", [2, 4])
def test_processes_drive_flows_at_once_on_one_database(
    pg_server: PostgresServer, tmp_path: Path, processes: int
) -> None:
    schema, go, side = unique_schema(), tmp_path / "go", tmp_path / "side.txt"
    _open_and_close(store_for(pg_server, schema))  # the schema exists before the race
    procs = [
        subprocess.Popen(
            [
                *(sys.executable, str(WORKER), pg_server.url, schema, "many"),
                *(f"p{i}", str(side), str(FLOWS_PER_PROCESS), str(go)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-p{i}").exists() for i in range(processes)):
        assert time.monotonic() < deadline, "workers did not get ready"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    go.touch()  # every process starts its flows at once
    outputs = [p.communicate(timeout=180) for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    results = [r for out, _ in outputs for r in json.loads(out)]
    assert len(results) == processes * FLOWS_PER_PROCESS
    for i, result in enumerate(results):
        prefix = f"p{i // FLOWS_PER_PROCESS}-{i % FLOWS_PER_PROCESS}"
        assert result["status"] == "completed"
        assert result["final_output"] == expected_output("chain", prefix, MANY_LENGTH)
    # Every node of every flow ran exactly once, and stored exactly one record.
    lines = Counter(side.read_text().splitlines())
    assert len(lines) == processes * FLOWS_PER_PROCESS * (MANY_LENGTH - 2)
    assert set(lines.values()) == {1}
    store = store_for(pg_server, schema)
    try:
        listed = call(store, "list_flows", limit=1000)
        assert sorted(str(r.flow_id) for r in listed) == sorted(r["flow_id"] for r in results)
        counts = call(store, "record_counts", [r.flow_id for r in listed])
        assert all(c == {"finished": MANY_LENGTH} for c in counts.values())
    finally:
        call(store, "close")


def _open_and_close(store: PostgresStore) -> None:
    call(store, "open")
    call(store, "close")


def _nested(count: int) -> str:
    out = "in"
    for i in range(count):
        out = f"n{i}({out})"
    return out


def test_server_crashed_mid_run_fails_clearly_then_recover_completes() -> None:
    server = PostgresServer(fsync=True).start()
    ran: list[str] = []

    def work(ctx: Any) -> NodeResult:
        name = ctx.current_node.name
        ran.append(name)
        if name == "n10" and ran.count("n10") == 1:
            server.crash()  # the server dies while n10 runs; its commit cannot land
        return NodeResult(output_text=f"{name}({ctx.input_text})")

    store = store_for(server, unique_schema(), connect_timeout=2)
    shown = server.dsn(password="***")
    try:
        runner = FlowRunner(chain_graph(40), SimpleNodeRegistry({"echo": work}), store=store)
        failed = runner.run("in")
        assert failed.status is FlowStatus.FAILED
        assert failed.error is not None
        assert failed.error.startswith(
            f"the store ({store.describe()}) failed while committing flow {failed.flow_id}: "
            f"PostgresUnavailableError: PostgreSQL server {shown} is unavailable"
        ), failed.error
        assert PASSWORD not in failed.error
        assert ran == [f"n{i}" for i in range(11)]

        server.start()  # same folder and port: crash recovery replays the WAL
        done = runner.recover(failed.flow_id)
        assert (done.status, done.final_output) == (FlowStatus.COMPLETED, _nested(38))
        # Only n10, whose commit was lost with the server, ran twice.
        assert ran == [f"n{i}" for i in range(11)] + [f"n{i}" for i in range(10, 38)]
        snap = call(store, "load_flow", failed.flow_id)
        assert len(snap.records) == 40
    finally:
        call(store, "close")
        server.remove()


def _end_backends(server: PostgresServer, pids: list[int]) -> None:
    """Terminate the backends ``pids`` and wait until they are gone."""
    listed = ", ".join(str(p) for p in pids)
    deadline = time.monotonic() + 30
    while server.admin_value(
        f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid IN ({listed})"
    ):
        assert time.monotonic() < deadline, f"backends {listed} did not end"
        time.sleep(0.05)


def test_a_frozen_server_times_out_instead_of_hanging() -> None:
    server = PostgresServer().start()
    ran: list[str] = []
    frozen: list[int] = []

    def work(ctx: Any) -> NodeResult:
        name = ctx.current_node.name
        ran.append(name)
        if name == "n5" and ran.count("n5") == 1:
            # The store's backends stop answering, alive, like a partitioned server.
            # (Asked from another thread: this one runs the flow's event loop.)
            with ThreadPoolExecutor(1) as pool:
                rows = pool.submit(
                    server.admin_rows,
                    "SELECT pid FROM pg_stat_activity WHERE application_name = 'quartermaster'",
                ).result()
            frozen.extend(r[0] for r in rows)
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
        return NodeResult(output_text=f"{name}({ctx.input_text})")

    store = store_for(server, unique_schema(), statement_timeout=0.5)
    runner = FlowRunner(chain_graph(12), SimpleNodeRegistry({"echo": work}), store=store)
    try:
        started = time.monotonic()
        failed = runner.run("in")
        assert time.monotonic() - started < 15
        assert frozen
        assert failed.status is FlowStatus.FAILED
        assert failed.error == (
            f"the store ({store.describe()}) failed while committing flow {failed.flow_id}: "
            f"PostgresUnavailableError: PostgreSQL server {server.dsn(password='***')} is "
            "unavailable: no answer within 5.5 s"
        )
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        _end_backends(server, frozen)
        # The commit sent before the freeze may have landed once the backend woke up
        # (the backends are gone now, so it has or never will): it was never
        # retried, so n5 ran again only if it did not.
        snap = call(store, "load_flow", failed.flow_id)
        landed = any(r.node_id == name_id("n5") for r in snap.records)
        done = runner.recover(failed.flow_id)
        assert (done.status, done.final_output) == (FlowStatus.COMPLETED, _nested(10))
        again = [] if landed else ["n5"]
        assert ran == [f"n{i}" for i in range(6)] + again + [f"n{i}" for i in range(6, 10)]
    finally:
        call(store, "close")
        server.remove()


def _noop_registry(ran: list[str]) -> SimpleNodeRegistry:
    def work(ctx: Any) -> NodeResult:
        ran.append(ctx.current_node.name)
        return NodeResult(output_text="ok")

    return SimpleNodeRegistry({"echo": work})


def _refused(store: PostgresStore, error: type[Exception]) -> str:
    """Run a flow on ``store``: it must fail with ``error`` before any node runs."""
    ran: list[str] = []
    runner = FlowRunner(chain_graph(3), _noop_registry(ran), store=store)
    try:
        with pytest.raises(error) as caught:
            runner.run("in")
    finally:
        call(store, "close")
    assert ran == []
    return str(caught.value)


def test_refused_connection_names_the_server() -> None:
    port = free_port()  # nothing listens there
    dsn = f"postgresql://qm:{PASSWORD}@127.0.0.1:{port}/qm_test"
    message = _refused(PostgresStore(dsn, connect_timeout=2), PostgresUnavailableError)
    assert message.startswith(
        f"PostgreSQL server postgresql://qm:***@127.0.0.1:{port}/qm_test is unavailable "
        "(Connection refused): "
    ), message
    assert PASSWORD not in message


def test_a_password_in_the_query_is_hidden_when_the_server_is_unavailable() -> None:
    port = free_port()  # nothing listens there
    dsn = f"postgresql://qm@127.0.0.1:{port}/qm_test?sslmode=disable&password={PASSWORD}"
    message = _refused(PostgresStore(dsn, connect_timeout=2), PostgresUnavailableError)
    assert message.startswith(
        f"PostgreSQL server postgresql://qm@127.0.0.1:{port}/qm_test?sslmode=disable&password=*** "
        "is unavailable (Connection refused): "
    ), message
    assert PASSWORD not in message


def test_a_wrong_password_is_a_clear_error(pg_server: PostgresServer) -> None:
    store = PostgresStore(pg_server.dsn(password="wrong"), schema_name=unique_schema())
    message = _refused(store, StoreOpenError)
    assert message == (
        f"cannot open the PostgreSQL store {pg_server.dsn(password='***')} schema "
        f'{store.schema_name}: password authentication failed for user "qm"'
    )


def test_a_missing_database_is_a_clear_error(pg_server: PostgresServer) -> None:
    store = PostgresStore(pg_server.dsn(database="nope"), schema_name="qm")
    message = _refused(store, StoreOpenError)
    assert message == (
        f"cannot open the PostgreSQL store {pg_server.dsn(password='***', database='nope')} "
        'schema qm: database "nope" does not exist'
    )


def test_a_role_without_create_rights_is_a_clear_error(pg_server: PostgresServer) -> None:
    pg_server.admin(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'limited') THEN "
        "CREATE ROLE limited LOGIN PASSWORD 'limited-pw'; END IF; END $$"
    )
    store = PostgresStore(pg_server.dsn("limited", "limited-pw"), schema_name="qm_limited")
    message = _refused(store, StoreOpenError)
    assert message == (
        f"cannot open the PostgreSQL store {pg_server.dsn('limited', '***')} schema qm_limited: "
        "permission denied for database qm_test (the role needs CREATE on the database to "
        "make schema 'qm_limited', and rights on its tables)"
    )


def test_a_newer_schema_is_refused_untouched(pg_server: PostgresServer) -> None:
    schema = unique_schema()
    _open_and_close(store_for(pg_server, schema))
    pg_server.admin(f"UPDATE {schema}.qm_meta SET value = '99' WHERE key = 'schema_version'")
    pg_server.admin(f"CREATE TABLE {schema}.from_the_future (x int)")
    tables = _tables(pg_server, schema)
    store = store_for(pg_server, schema)
    message = _refused(store, SchemaVersionError)
    assert message == (
        f"cannot open the PostgreSQL store {pg_server.dsn(password='***')} schema {schema}: "
        f"its schema {schema!r} is at version 99, newer than this qm-store-postgres "
        "understands (5); upgrade qm-store-postgres. Nothing was changed."
    )
    assert _tables(pg_server, schema) == tables
    version = f"SELECT value FROM {schema}.qm_meta WHERE key = 'schema_version'"
    assert pg_server.admin_value(version) == "99"


def _echo(ctx: Any) -> NodeResult:
    return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")


def _tables(server: PostgresServer, schema: str) -> list[str]:
    rows = server.admin_rows(
        f"SELECT tablename FROM pg_tables WHERE schemaname = '{schema}' ORDER BY 1"
    )
    return [r[0] for r in rows]


@pytest.mark.parametrize(
    ("dsn", "problem"),
    [
        (
            "mysql://qm:pw@localhost/db",
            "invalid PostgreSQL DSN 'mysql://qm:***@localhost/db': it must start with "
            "postgresql:// or postgres://",
        ),
        (
            "postgresql://qm:pw@localhost:port/db",
            "invalid PostgreSQL DSN 'postgresql://qm:***@localhost:port/db': the port is not "
            "a number",
        ),
    ],
)
def test_a_bad_dsn_is_refused_before_anything_runs(dsn: str, problem: str) -> None:
    with pytest.raises(ValueError, match="invalid PostgreSQL DSN") as caught:
        PostgresStore(dsn)
    assert problem in str(caught.value)
    assert "pw@" not in str(caught.value)
    with pytest.raises(ValueError, match="invalid PostgreSQL DSN"):
        PostgresSettings(dsn=dsn)


def test_password_is_hidden_in_descriptions() -> None:
    store = PostgresStore("postgresql://agent:s3cret@db.internal:5433/agents")
    assert store.describe() == (
        "postgres postgresql://agent:***@db.internal:5433/agents schema quartermaster"
    )
    assert "s3cret" not in repr(store)


def test_a_version_1_schema_is_migrated_and_its_flows_go_on(pg_server: PostgresServer) -> None:
    # A schema as qm-store-postgres 1 left it: a flow whose process died with its
    # first activation queued.
    s = unique_schema()
    graph = chain_graph(4)
    digest, spec = GraphCache().row(graph)
    fid = uuid4()
    start = Activation(name_id("Start"), 1)
    pg_server.admin(
        f"{meta_sql(s)}; {MIGRATIONS[0](s)}; INSERT INTO {s}.qm_meta VALUES ('schema_version', '1')"
    )
    pg_server.admin(
        f"INSERT INTO {s}.qm_graphs VALUES ('{digest}', $${spec}$$); "
        f"INSERT INTO {s}.qm_flows VALUES ('{fid}', '{digest}', 'in', 'running', 1.0, 2.0, "
        "NULL, NULL, 0, NULL); "
        f"INSERT INTO {s}.qm_pending VALUES ('{fid}', '{start.node_id}', 1, 1, "
        f"'{json.dumps(start.to_dict())}')"
    )
    store = store_for(pg_server, s)
    try:
        before = call(store, "get_flow", fid)
        assert (before.version, before.lease_owner, before.lease_epoch) == (0, None, 0)
        assert pg_server.admin_value(
            f"SELECT value FROM {s}.qm_meta WHERE key = 'schema_version'"
        ) == str(SCHEMA_VERSION)
        runner = FlowRunner(graph, SimpleNodeRegistry({"echo": _echo}), store=store)
        done = runner.recover(fid)
        assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "n1(n0(in))")
        after = call(store, "get_flow", fid)
        assert (after.version, after.lease_epoch, after.lease_owner) == (4, 1, None)
        events = call(store, "read_events", fid)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert [e.type for e in events][-1] == "FlowFinished"
    finally:
        call(store, "close")
