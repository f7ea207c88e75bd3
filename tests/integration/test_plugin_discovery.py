"""Plugin discovery through real installs: fixture plugin distributions are pip-installed,
with the core, into a fresh virtual environment, and driven through the ``qm`` script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "plugins"


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment with quartermaster-engine, qm-acme, qm-broken and qm-clash."""
    path = tmp_path_factory.mktemp("plugin-venv")
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    install = subprocess.run(
        [
            str(path / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(ROOT / "core"),
            str(FIXTURES / "qm-acme"),
            str(FIXTURES / "qm-broken"),
            str(FIXTURES / "qm-clash"),
            str(FIXTURES / "qm-widgets"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, install.stderr
    return path


def qm(venv: Path, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("QM_")}
    environ.update(env)
    return subprocess.run(
        [str(venv / "bin" / "qm"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environ,
        check=False,
        timeout=120,
    )


def plugins_json(venv: Path, tmp_path: Path, **env: str) -> dict[str, object]:
    done = qm(venv, "plugins", "--json", cwd=tmp_path, **env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_qm_plugins_lists_the_installed_plugin_and_the_broken_one(
    venv: Path, tmp_path: Path
) -> None:
    data = plugins_json(venv, tmp_path, QM_DISABLE_PLUGINS="qm-clash")
    plugins = {p["name"]: p for p in data["plugins"]}  # type: ignore[index,union-attr]
    assert sorted(plugins) == ["acme", "broken", "core", "widgets"]
    assert plugins["acme"] == {
        "name": "acme",
        "distribution": "qm-acme",
        "version": "1.2.3",
        "module": "qm_acme.plugin",
        "hooks": [
            "qm_register_acme_widgets",
            "qm_register_commands",
            "qm_register_dispatchers",
            "qm_register_event_sinks",
            "qm_register_exports",
            "qm_register_node_executors",
            "qm_register_stores",
        ],
        "provides": {
            "store": ["acme-memory"],
            "dispatcher": ["acme-sync"],
            "node_executor": ["acme.Shout"],
            "event_sink": ["acme-count"],
            "command": ["acme-hello"],
            "export": ["qm_acme.old:Greeting"],
            "acme_widget": ["spring"],
        },
        "error": None,
    }
    assert plugins["widgets"]["provides"] == {"acme_widget": ["gear"]}  # type: ignore[index]
    broken = plugins["broken"]
    assert (broken["distribution"], broken["version"], broken["provides"]) == (
        "qm-broken",
        "0.0.1",
        {},
    )
    assert broken["error"].startswith(  # type: ignore[union-attr]
        "ModuleNotFoundError: No module named 'qm_this_module_does_not_exist' ("
    )
    assert broken["error"].endswith("qm_broken/plugin.py:3)")  # type: ignore[union-attr]
    assert data["errors"] == [
        {"plugin": "broken", "distribution": "qm-broken", "error": broken["error"]}
    ]
    assert plugins["core"]["provides"] == {  # type: ignore[index]
        "store": ["memory"],
        "dispatcher": ["sync", "async"],
        "node_executor": ["Start1", "End1", "Back1"],
        "event_sink": ["console", "jsonl"],
    }


def test_a_plugin_command_runs_as_a_qm_subcommand(venv: Path, tmp_path: Path) -> None:
    done = qm(venv, "acme-hello", "world", cwd=tmp_path, QM_DISABLE_PLUGINS="qm-clash")
    assert (done.returncode, done.stdout) == (0, "hello world, from acme\n"), done.stderr
    listed = qm(venv, "--help", cwd=tmp_path, QM_DISABLE_PLUGINS="qm-clash")
    assert "acme-hello  Greets NAME, from ACME." in listed.stdout


def test_qm_serve_without_qm_server_names_the_distribution_to_install(
    venv: Path, tmp_path: Path
) -> None:
    done = qm(venv, "serve", "--graphs", ".", cwd=tmp_path, QM_DISABLE_PLUGINS="qm-clash,qm-broken")
    assert done.returncode == 1
    assert done.stderr == (
        "error: `qm serve` is provided by the qm-server distribution, which is not "
        "installed: pip install qm-server\n"
    )


def test_qm_run_uses_the_plugin_executor_dispatcher_and_sink_from_config(
    venv: Path, tmp_path: Path
) -> None:
    (tmp_path / "qm.toml").write_text(
        '[store]\nname = "acme-memory"\nledger = "ledger.txt"\n'
        '[dispatcher]\nname = "acme-sync"\n'
        '[[sinks]]\nname = "acme-count"\npath = "events.txt"\n'
        '[nodes."acme.Shout"]\nsuffix = "?"\ntimes = 2\n'
    )
    done = qm(
        venv,
        "run",
        str(FIXTURES / "shout.yaml"),
        "--input",
        "hello",
        "--json",
        cwd=tmp_path,
        QM_DISABLE_PLUGINS="qm-clash",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["status"], result["final_output"], result["error"]) == (
        "completed",
        "HELLO??",
        None,
    )
    assert (tmp_path / "ledger.txt").read_text() == f"{result['flow_id']}\n"
    # The broken plugin is reported as a warning and changes nothing else.
    assert "plugin 'broken' from qm-broken 0.0.1 failed" in done.stderr
    assert (tmp_path / "events.txt").read_text().splitlines() == [
        "FlowStarted",
        "NodeStarted",
        "NodeFinished",
        "NodeStarted",
        "NodeFinished",
        "NodeStarted",
        "NodeFinished",
        "FlowFinished",
    ]


def test_disable_and_load_lists_choose_what_loads(venv: Path, tmp_path: Path) -> None:
    hidden = plugins_json(venv, tmp_path, QM_DISABLE_PLUGINS="qm-broken, qm-clash")
    assert [p["name"] for p in hidden["plugins"]] == ["core", "acme", "widgets"]  # type: ignore[index,union-attr]
    assert hidden["errors"] == []
    only = plugins_json(venv, tmp_path, QM_LOAD_PLUGINS="qm-acme")
    assert [p["name"] for p in only["plugins"]] == ["core", "acme"]  # type: ignore[index,union-attr]
    none = plugins_json(venv, tmp_path, QM_LOAD_PLUGINS="")
    assert [p["name"] for p in none["plugins"]] == ["core"]  # type: ignore[index,union-attr]


def test_an_extension_hook_declared_by_one_plugin_is_implemented_by_another(
    venv: Path, tmp_path: Path
) -> None:
    code = (
        "from quartermaster_engine.plugins.loader import load_plugins\n"
        "widgets = load_plugins().registry('acme_widget')\n"
        "print(sorted((r.name, r.origin.distribution, r.create()) for r in widgets))\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("QM_")}
    environ["QM_DISABLE_PLUGINS"] = "qm-clash,qm-broken"
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        env=environ,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "[('gear', 'qm-widgets', 'a gear'), ('spring', 'qm-acme', 'a spring')]"
    )
    # Without the declaring plugin, the hook is unknown: the implementer fails alone.
    data = plugins_json(venv, tmp_path, QM_DISABLE_PLUGINS="qm-acme,qm-clash,qm-broken")
    widgets = next(p for p in data["plugins"] if p["name"] == "widgets")  # type: ignore[union-attr]
    assert widgets["error"].startswith("unknown hook qm_register_acme_widgets; known: ")  # type: ignore[index]


def test_a_name_collision_fails_naming_both_distributions(venv: Path, tmp_path: Path) -> None:
    done = qm(venv, "plugins", cwd=tmp_path, QM_DISABLE_PLUGINS="qm-broken")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: node type 'acme.Shout' is registered twice: by qm-acme 1.2.3 (plugin 'acme') "
        "and by qm-clash 0.3.0 (plugin 'clash'); uninstall one or disable it with "
        "QM_DISABLE_PLUGINS"
    )


def test_strict_mode_makes_a_broken_plugin_fatal(venv: Path, tmp_path: Path) -> None:
    done = qm(venv, "plugins", cwd=tmp_path, QM_STRICT_PLUGINS="1", QM_DISABLE_PLUGINS="qm-clash")
    assert done.returncode == 1
    assert done.stderr.startswith(
        "error: plugin 'broken' from qm-broken 0.0.1 failed: ModuleNotFoundError: "
        "No module named 'qm_this_module_does_not_exist'"
    )


def test_an_invalid_setting_names_the_plugin_the_field_and_the_source(
    venv: Path, tmp_path: Path
) -> None:
    (tmp_path / "qm.toml").write_text('[nodes."acme.Shout"]\ntimes = "many"\n')
    done = qm(
        venv,
        "run",
        str(FIXTURES / "shout.yaml"),
        "--input",
        "x",
        cwd=tmp_path,
        QM_DISABLE_PLUGINS="qm-clash,qm-broken",
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "error: node type 'acme.Shout' of qm-acme 1.2.3 (plugin 'acme'): setting 'times': "
        "Input should be a valid integer, unable to parse string as an integer (from qm.toml)"
    )


def test_an_unknown_backend_lists_the_installed_ones(venv: Path, tmp_path: Path) -> None:
    done = qm(
        venv,
        "run",
        str(FIXTURES / "shout.yaml"),
        "--input",
        "x",
        cwd=tmp_path,
        QM_DISABLE_PLUGINS="qm-clash,qm-broken",
        QM_DISPATCHER="threads",
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: unknown dispatcher 'threads'; installed: acme-sync, async, sync "
        "(from environment (QM_DISPATCHER))"
    )


def test_exports_resolve_through_the_registry_and_missing_plugins_say_what_to_install(
    venv: Path, tmp_path: Path
) -> None:
    """The core imports no plugin: an old import path finds its object through the
    registry (``qm_register_exports``); qm-store-sqlite is not installed here."""
    code = (
        "from quartermaster_engine.plugins.exports import exported\n"
        "print(exported('qm_acme.old', 'Greeting', 'install qm-acme'))\n"
        "from quartermaster_engine.stores.sqlite_store import SQLiteStore\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("QM_")}
    environ["QM_DISABLE_PLUGINS"] = "qm-broken,qm-clash"
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environ,
        check=False,
        timeout=120,
    )
    assert done.stdout == "hello from acme\n"
    assert done.stderr.strip().splitlines()[-1] == (
        "ImportError: SQLiteStore now ships in its own distribution: pip install qm-store-sqlite"
    )
    worker = qm(venv, "worker", cwd=tmp_path, QM_DISABLE_PLUGINS="qm-broken,qm-clash")
    assert (worker.returncode, worker.stderr.strip()) == (
        1,
        "error: qm worker runs Celery workers: pip install qm-dispatch-celery",
    )
