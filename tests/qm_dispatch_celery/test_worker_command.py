"""``qm worker``'s refusals: each names what is wrong before any worker starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from celery_support import QM, Fleet


def _qm(fleet: Fleet, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(QM), "worker", *args],
        cwd=fleet.directory,
        capture_output=True,
        text=True,
        env=fleet.env(),
        timeout=60,
    )


def test_a_module_that_cannot_be_imported(fleet: Fleet) -> None:
    done = _qm(fleet, "--config", str(fleet.config), "-p", "no_such_nodes")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: cannot import node executor module 'no_such_nodes': No module named 'no_such_nodes'"
    )


def test_a_module_without_the_registering_function(fleet: Fleet) -> None:
    (fleet.directory / "plain.py").write_text("X = 1\n")
    done = _qm(fleet, "--config", str(fleet.config), "-p", "plain")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: module 'plain' ({fleet.directory / 'plain.py'}) has no "
        "qm_register_node_executors(register) function: a -p module registers its "
        "executors with it"
    )


def test_a_configuration_without_the_celery_dispatcher(tmp_path: Path) -> None:
    config = tmp_path / "qm.toml"
    config.write_text('[store]\nname = "sqlite"\npath = "flows.db"\n')
    done = subprocess.run(
        [str(QM), "worker", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: a worker needs [dispatcher] name = \"celery\"; the configuration has 'sync' "
        "(from default)"
    )


def test_without_the_distribution_it_says_what_to_install() -> None:
    # The command comes from qm-dispatch-celery's plugin; QM_DISABLE_PLUGINS hides it as
    # if the distribution were not installed.
    code = "from quartermaster_engine.cli import main; main(['worker'])"
    env = {**os.environ, "QM_DISABLE_PLUGINS": "qm-dispatch-celery"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: qm worker runs Celery workers: pip install qm-dispatch-celery"
    )


def test_a_store_in_memory_is_refused_at_start_as_the_client_refuses_it(tmp_path: Path) -> None:
    config = tmp_path / "qm.toml"
    config.write_text(
        '[store]\nname = "memory"\n\n[dispatcher]\nname = "celery"\n'
        'broker_url = "redis://127.0.0.1:1/0"\n'
    )
    done = subprocess.run(
        [str(QM), "worker", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr == (
        "error: a worker of the celery dispatcher runs flows its clients store, in other "
        "processes: it needs a durable store they share (sqlite, redis, postgres); "
        "InMemoryStore keeps flows in this process only\n"
    )
    assert done.stdout == ""
    (tmp_path / "one.yaml").write_text(
        "name: one\nnodes:\n  - {name: Start, type: Start1}\n  - {name: End, type: End1}\n"
        "edges:\n  - {from: Start, to: End}\n"
    )
    client = subprocess.run(
        [str(QM), "run", str(tmp_path / "one.yaml"), "-i", "x", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert client.returncode == 1
    assert client.stderr == (
        "error: dispatcher CeleryDispatcher runs flows on workers in other processes: it "
        "needs a durable store they share (sqlite, redis, postgres); InMemoryStore keeps "
        "flows in this process only\n"
    )


def test_the_start_up_line_names_store_and_broker_with_passwords_masked(tmp_path: Path) -> None:
    config = tmp_path / "qm.toml"
    config.write_text(
        '[store]\nname = "sqlite"\npath = "flows.db"\n\n[dispatcher]\nname = "celery"\n'
        'broker_url = "redis://:hunter2@127.0.0.1:1/0"\nqueue = "q1"\n'
    )
    # Nothing listens on port 1: the worker prints its line, then retries the broker.
    proc = subprocess.Popen(
        [str(QM), "worker", "--config", str(config), "--pool", "solo"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert first == (
        "qm worker: store sqlite (path=flows.db), broker redis://:***@127.0.0.1:1/0, queue q1\n"
    )
