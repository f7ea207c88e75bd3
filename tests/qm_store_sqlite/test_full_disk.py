"""A full disk under the SQLite store (a real 4 MB tmpfs): run() returns a FAILED
result naming the store failure (it never raises once the flow is stored), the
flow stays running for recover(), and the lease is released at once, so
another process recovers the flow as soon as there is room again."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from qm_store_sqlite import SQLiteStore
from quartermaster_engine import ExecutionContext, FlowRunner, SimpleNodeRegistry
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_engine.testing import call, chain_graph

BIG = 300_000


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs mounted for the test (needs root), unmounted after it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4M", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def _fill(disk: Path, leave: int) -> Path:
    """Fill ``disk`` to ENOSPC, then free ``leave`` bytes."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError:
            pass
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def _registry() -> SimpleNodeRegistry:
    def echo(ctx: ExecutionContext) -> str:
        # "big" makes an output larger than the free space; anything else is small.
        return "y" * BIG if ctx.input_text == "big" else ctx.input_text + "."

    return SimpleNodeRegistry({"echo": echo})


def test_a_full_disk_mid_run_returns_failed_and_releases_the_lease(small_disk: Path) -> None:
    path = small_disk / "flows.db"
    graph = chain_graph(3)
    runner = FlowRunner(graph, _registry(), store=SQLiteStore(path))
    assert runner.run("warm").status is FlowStatus.COMPLETED  # the schema is on disk
    filler = _fill(small_disk, leave=128 * 1024)

    result = runner.run("big")

    assert result.status is FlowStatus.FAILED
    assert result.error == (
        f"the store (sqlite {path}) failed while committing flow {result.flow_id}: "
        "OperationalError: database or disk is full"
    )
    record = call(runner.store, "get_flow", result.flow_id)
    assert record.status is FlowStatus.RUNNING  # left for recover()
    assert record.lease_owner is None  # released, not held until it runs out

    filler.unlink()
    other = FlowRunner(graph, _registry(), store=SQLiteStore(path))
    recovered = other.recover(result.flow_id)
    assert recovered.status is FlowStatus.COMPLETED, recovered.error
    assert recovered.final_output == "y" * BIG


def test_run_raises_only_when_the_flow_could_not_be_stored(small_disk: Path) -> None:
    # From no room at all, through room for the flow but not for its start's
    # commit (StoreUnavailableError was raised there, the lease held), to room for
    # a few commits: with the flow stored, a FAILED result (never a raise);
    # without, the store's own error and no flow.
    path = small_disk / "flows.db"
    runner = FlowRunner(chain_graph(3), _registry(), store=SQLiteStore(path))
    runner.run("warm")
    outcomes: list[str] = []
    for leave in range(0, 64 * 1024, 4096):
        filler = _fill(small_disk, leave)
        flow_id = uuid.uuid4()
        raised: sqlite3.OperationalError | None = None
        try:
            result = runner.run("big", flow_id=flow_id)
        except sqlite3.OperationalError as exc:
            raised = exc
        if raised is not None:
            assert str(raised) == "database or disk is full"
            assert call(runner.store, "get_flow", flow_id) is None
            outcomes.append("raised")
        else:
            assert result.status is FlowStatus.FAILED
            assert result.error is not None
            assert result.error.startswith(f"the store (sqlite {path}) failed while ")
            record = call(runner.store, "get_flow", flow_id)
            assert record.status is FlowStatus.RUNNING
            outcomes.append("failed")
        filler.unlink()
    assert set(outcomes) == {"raised", "failed"}, outcomes
