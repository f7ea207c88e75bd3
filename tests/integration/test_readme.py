"""The README's Python examples run as written, and its two set-up commands exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.parametrize("index", range(len(python_blocks(README))))
def test_readme_python_example_runs(index: int, tmp_path: Path) -> None:
    code = python_blocks(README)[index]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_the_tour_prints_a_completed_flow() -> None:
    code = python_blocks(README)[0]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout == "FlowStatus.COMPLETED I was charged twice\n"


def test_the_set_up_commands_are_marked_for_ci() -> None:
    for marker in ("main-command", "test-command"):
        block = re.search(rf"<!-- {marker} -->\n```bash\n(.+?)\n```\n<!-- /{marker} -->", README)
        assert block is not None, marker
    assert "./dev test" in README
    assert "./dev example" in README
