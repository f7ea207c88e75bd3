"""The core distribution never imports a plugin distribution; the 0.1.5 import paths
of objects that moved into plugins resolve through the plugin registry
(``qm_register_exports``) and, without the plugin, say what to install."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_PACKAGES = {
    "qm_store_sqlite",
    "qm_store_redis",
    "qm_store_postgres",
    "qm_dispatch_thread",
    "qm_dispatch_celery",
    "qm_server",
    "qm_nodes_std",
    "qm_nodes_llm",
    "qm_sink_otel",
}


def _imported_packages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.partition(".")[0])
    return found


def test_no_core_module_imports_a_plugin_distribution() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_packages(path) & PLUGIN_PACKAGES)
        for path in sorted((ROOT / "core" / "src").rglob("*.py"))
        if _imported_packages(path) & PLUGIN_PACKAGES
    }
    assert offenders == {}


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )


def test_the_0_1_5_paths_resolve_to_the_plugins_objects() -> None:
    done = _run(
        "from quartermaster_engine.stores.sqlite_store import SQLiteStore\n"
        "from quartermaster_engine.dispatchers.thread_dispatcher import (\n"
        "    DispatcherShutdownError, ThreadDispatcher, ThreadDispatcherSettings)\n"
        "import qm_dispatch_thread, qm_store_sqlite.legacy\n"
        "assert SQLiteStore is qm_store_sqlite.legacy.SQLiteStore\n"
        "assert ThreadDispatcher is qm_dispatch_thread.ThreadDispatcher\n"
        "assert DispatcherShutdownError is qm_dispatch_thread.DispatcherShutdownError\n"
        "assert ThreadDispatcherSettings is qm_dispatch_thread.ThreadDispatcherSettings\n"
        "print('ok')\n"
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")


def test_without_the_plugin_each_path_says_what_to_install() -> None:
    cases = {
        "from quartermaster_engine.stores.sqlite_store import SQLiteStore": (
            "SQLiteStore now ships in its own distribution: pip install qm-store-sqlite"
        ),
        "from quartermaster_engine.dispatchers.thread_dispatcher import ThreadDispatcher": (
            "ThreadDispatcher now ships in its own distribution: pip install qm-dispatch-thread"
        ),
        "from quartermaster_engine import run_graph; run_graph('x.yaml')": (
            "run_graph() needs the LLM nodes: pip install qm-nodes-llm"
        ),
    }
    for code, message in cases.items():
        # QM_LOAD_PLUGINS="" loads none: what the loader sees when none is installed.
        done = _run(code, QM_LOAD_PLUGINS="")
        assert done.returncode == 1, code
        assert done.stderr.strip().splitlines()[-1] == f"ImportError: {message}", code


def test_an_unknown_name_of_an_old_path_is_an_attribute_error() -> None:
    done = _run("import quartermaster_engine.stores.sqlite_store as m; m.Nope")
    assert done.stderr.strip().splitlines()[-1] == (
        "AttributeError: module 'quartermaster_engine.stores.sqlite_store' has no attribute 'Nope'"
    )
