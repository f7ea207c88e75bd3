"""The README's two commands: the main one builds no LLM runtime; the test one
installs the offline model first, saying so, with the build's progress."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
HATCH = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["envs"]["default"]


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("local_model", ROOT / "tools" / "local_model.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_main_commands_environment_leaves_out_the_local_extra() -> None:
    (llm,) = [m for m in HATCH["workspace"]["members"] if "qm-nodes-llm" in str(m)]
    assert llm == {"path": "plugins/qm-nodes-llm", "features": ["anthropic"]}
    assert HATCH["installer"] == "uv"
    assert HATCH["scripts"]["example"].startswith("qm run examples/ticket-router.yaml ")
    assert HATCH["scripts"]["test"] == ["python tools/local_model.py", "pytest {args}"]
    assert HATCH["scripts"]["lint"][0] == "python tools/local_model.py"


def test_build_progress_is_read_from_make_ninja_and_uv_lines() -> None:
    progress = _tool().progress
    assert progress("  [ 42%] Building C object vendor/llama.cpp/ggml/src/ggml.c.o") == 42
    assert progress("[100%] Linking CXX shared library bin/libllama.so") == 100
    assert progress("[17/40] /usr/bin/c++ -O3 -c llama.cpp") == 42
    assert progress(" DEBUG [llama-cpp-python==0.3.16] [ 7%] Building CXX object") == 7
    assert progress("Resolved 12 packages in 40ms") is None


def test_with_the_model_installed_the_step_says_nothing() -> None:
    if not _tool().installed():
        # `./dev test` runs the step before pytest, so there this never skips.
        pytest.skip("the local extra is not installed: pytest ran without ./dev test")
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "local_model.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
