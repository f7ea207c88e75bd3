"""``qm worker``'s refusals: each names what is wrong before any worker starts."""

from __future__ import annotations

import os
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
